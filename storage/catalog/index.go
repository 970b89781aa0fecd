package catalog

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix starts every key of the index, so that several deployments can share
// one Redis (each with a prefix of its own).
const DefaultPrefix = "livetape:catalog:"

// Names of the index's keys after the prefix; doc.go describes them.
const (
	keyBuilt   = "built"   // string: set when a rebuild completed; absent = index not built
	keyLock    = "lock"    // string: token of the rebuild running now
	keyEntries = "entries" // hash: file id -> entry JSON
	keyFacets  = "facets"  // hash: file id -> "app/stream/format/type" (escaped), names its sets
	keyVer     = "ver"     // hash: file id -> stored_at as 19 digits of UNIX ns, to order versions
	keyDeleted = "deleted" // sorted set: file id -> UNIX ms of its deletion (tombstones for rebuilds)
	keySets    = "z:"      // sorted sets: "z:" + facet with some parts empty -> file id by start time
)

// facetParts are the entry fields a list can be filtered by, in the order of a facet.
func facetParts(app, streamID, format, typ string) [4]string {
	return [4]string{url.PathEscape(app), url.PathEscape(streamID), url.PathEscape(format), url.PathEscape(typ)}
}

// facet names the most specific set of an entry: "live/cam1/mp4/fragment".
func facet(r *Recording) string {
	p := facetParts(r.App, r.StreamID, r.Format, r.Type)
	return strings.Join(p[:], "/")
}

// setKey is the sorted set answering a query: its filters, with "" for "any".
func (c *Catalog) setKey(app, streamID, format, typ string) string {
	p := facetParts(app, streamID, format, typ)
	return c.prefix + keySets + strings.Join(p[:], "/")
}

// entrySets lists the 16 sets an entry belongs to: every combination of its facet parts
// with some of them replaced by "any". The Lua scripts compute the same list.
func (c *Catalog) entrySets(facet string) []string {
	parts := strings.Split(facet, "/")
	out := make([]string, 0, 16)
	for mask := range 16 {
		var k [4]string
		for i := range 4 {
			if mask&(1<<i) != 0 {
				k[i] = parts[i]
			}
		}
		out = append(out, c.prefix+keySets+strings.Join(k[:], "/"))
	}
	return out
}

// score is an entry's place in the sorted sets: its start in UNIX microseconds, which a
// float64 holds exactly until the year 2255.
func score(t time.Time) float64 { return float64(t.UnixMicro()) }

// version orders two writes of one entry for Rebuild: stored_at, as a fixed-width
// string so that Lua and Go compare it as text.
func version(r *Recording) string {
	if r.StoredAt.IsZero() || r.StoredAt.Before(time.Unix(0, 0)) {
		return fmt.Sprintf("%019d", 0)
	}
	return fmt.Sprintf("%019d", r.StoredAt.UnixNano())
}

// luaSets is the Lua twin of entrySets.
const luaSets = `
local function sets(prefix, facet)
  local v = {}
  for part in string.gmatch(facet, "[^/]+") do v[#v + 1] = part end
  local out = {}
  for mask = 0, 15 do
    local k = {}
    for i = 1, 4 do
      if math.floor(mask / 2 ^ (i - 1)) % 2 == 1 then k[i] = v[i] else k[i] = "" end
    end
    out[#out + 1] = prefix .. "z:" .. table.concat(k, "/")
  end
  return out
end
`

// putScript indexes one entry, replacing the version there, and clears a tombstone of
// its file id (a recording stored again after a delete is back).
// ARGV: prefix, file id, entry JSON, facet, score, version.
var putScript = redis.NewScript(luaSets + `
local p, id, facet = ARGV[1], ARGV[2], ARGV[4]
local old = redis.call("HGET", p .. "facets", id)
if old and old ~= facet then
  for _, k in ipairs(sets(p, old)) do redis.call("ZREM", k, id) end
end
for _, k in ipairs(sets(p, facet)) do redis.call("ZADD", k, ARGV[5], id) end
redis.call("HSET", p .. "entries", id, ARGV[3])
redis.call("HSET", p .. "facets", id, facet)
redis.call("HSET", p .. "ver", id, ARGV[6])
redis.call("ZREM", p .. "deleted", id)
return 1
`)

// deleteScript removes one entry from the index; with a tombstone time it also leaves
// a tombstone, so that a rebuild which read the entry before it was deleted does not
// bring it back, and trims tombstones older than any rebuild can run.
// ARGV: prefix, file id, tombstone UNIX ms ("" for none), trim before UNIX ms.
var deleteScript = redis.NewScript(luaSets + `
local p, id = ARGV[1], ARGV[2]
local old = redis.call("HGET", p .. "facets", id)
if old then
  for _, k in ipairs(sets(p, old)) do redis.call("ZREM", k, id) end
end
local n = redis.call("HDEL", p .. "entries", id)
redis.call("HDEL", p .. "facets", id)
redis.call("HDEL", p .. "ver", id)
if ARGV[3] ~= "" then
  redis.call("ZADD", p .. "deleted", ARGV[3], id)
  redis.call("ZREMRANGEBYSCORE", p .. "deleted", "-inf", "(" .. ARGV[4])
end
return n
`)

// finishScript marks the index built if the rebuild still holds the lock: a Redis that
// restarted during the rebuild lost the lock with what was written before, and must not
// be marked built. ARGV: prefix, lock token, marker value.
var finishScript = redis.NewScript(`
local p = ARGV[1]
if redis.call("GET", p .. "lock") ~= ARGV[2] then return 0 end
redis.call("SET", p .. "built", ARGV[3])
redis.call("DEL", p .. "lock")
return 1
`)

// refreshScript extends the rebuild lock if it is still ours. ARGV: prefix, token, TTL ms.
var refreshScript = redis.NewScript(`
if redis.call("GET", ARGV[1] .. "lock") == ARGV[2] then return redis.call("PEXPIRE", ARGV[1] .. "lock", ARGV[3]) end
return 0
`)

// unlockScript releases the rebuild lock if it is still ours. ARGV: prefix, token.
var unlockScript = redis.NewScript(`
if redis.call("GET", ARGV[1] .. "lock") == ARGV[2] then return redis.call("DEL", ARGV[1] .. "lock") end
return 0
`)
