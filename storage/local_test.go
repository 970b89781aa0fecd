package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/storage"
)

// TestLocalLayout checks that objects are plain files under Dir, so the directory can be
// served or copied as it is, with their sidecars beside them.
func TestLocalLayout(t *testing.T) {
	dir := t.TempDir()
	s := storage.Local{Dir: dir}
	put(t, s, "live/s1/a.flv", []byte("flv data"), "video/x-flv")
	b, err := os.ReadFile(filepath.Join(dir, "live", "s1", "a.flv"))
	if err != nil || string(b) != "flv data" {
		t.Fatalf("object file: %q, %v", b, err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "live", "s1"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "a.flv,a.flv.livetape-meta" {
		t.Fatalf("folder holds %q, want the object and its sidecar only", names)
	}
}

// TestLocalStaleSidecar covers files whose sidecar is missing or does not describe them:
// a crash between the sidecar's rename and the object's, or files copied in by hand.
func TestLocalStaleSidecar(t *testing.T) {
	dir := t.TempDir()
	s := storage.Local{Dir: dir}
	ctx := t.Context()

	// Copied in by hand: no sidecar.
	if err := os.MkdirAll(filepath.Join(dir, "hand"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hand", "x.m3u8"), []byte("#EXTM3U\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	obj, err := s.Stat(ctx, "hand/x.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	checkObject(t, "Stat", obj, "hand/x.m3u8", []byte("#EXTM3U\n"), "application/vnd.apple.mpegurl")

	// Same size, new content, sidecar left from the old one (the crash case).
	put(t, s, "k.mp4", []byte("old!"), "video/mp4")
	p := filepath.Join(dir, "k.mp4")
	if err := os.WriteFile(p, []byte("new!"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Make sure the modification time differs even on a coarse clock.
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	obj, err = s.Stat(ctx, "k.mp4")
	if err != nil {
		t.Fatal(err)
	}
	if obj.ETag != md5hex([]byte("new!")) {
		t.Fatalf("ETag %q is the stale sidecar's, want the MD5 of the new content", obj.ETag)
	}
	objs, err := s.List(ctx, "k")
	if err != nil || len(objs) != 1 || objs[0].ETag != md5hex([]byte("new!")) {
		t.Fatalf("List = %v, %v", objs, err)
	}
}

// TestLocalCrashLeftovers checks that the temporary files of an interrupted Put are
// not objects.
func TestLocalCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	s := storage.Local{Dir: dir}
	put(t, s, "a/x", []byte("x"), "")
	for _, name := range []string{".livetape-tmp-123", "y.livetape-meta"} {
		if err := os.WriteFile(filepath.Join(dir, "a", name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := s.List(t.Context(), "")
	if err != nil || len(objs) != 1 || objs[0].Key != "a/x" {
		t.Fatalf("List = %v, %v; want only a/x", objs, err)
	}
}

// TestLocalKeyFolderConflict: on a file system "a" cannot be an object and a folder.
func TestLocalKeyFolderConflict(t *testing.T) {
	s := storage.Local{Dir: t.TempDir()}
	ctx := t.Context()
	put(t, s, "a/b", []byte("x"), "")
	if _, err := s.Put(ctx, "a", bytes.NewReader([]byte("y")), 1, ""); err == nil {
		t.Fatal("Put of a key that is a folder succeeded")
	}
	if _, err := s.Put(ctx, "a/b/c", bytes.NewReader([]byte("y")), 1, ""); err == nil {
		t.Fatal("Put below a key that is an object succeeded")
	}
	if l := (&env{store: s, leftovers: newLocalLeftovers(s.Dir)}).leftovers(t); len(l) != 0 {
		t.Fatalf("failed Puts left %q", l)
	}
	if _, err := s.Stat(ctx, "a/b/c"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat below an object: %v, want ErrNotFound", err)
	}
}

// TestLocalDeletePrunesFolders: deleting the last key of a folder removes the folder,
// as S3 has none, but never Dir itself.
func TestLocalDeletePrunesFolders(t *testing.T) {
	dir := t.TempDir()
	s := storage.Local{Dir: dir}
	put(t, s, "a/b/c/x", []byte("x"), "")
	put(t, s, "a/y", []byte("y"), "")
	if err := s.Delete(t.Context(), "a/b/c/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a/b still there: %v", err)
	}
	if err := s.Delete(t.Context(), "a/y"); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Fatalf("Dir holds %v, %v; want it empty and present", entries, err)
	}
}

// TestLocalPutFileLinks: a file on the store's file system is stored as a hard link
// (the spool's recording becomes the object without a second copy on disk) and stays
// when the spool removes its name. A segment-sized one is hashed when first read: no
// ETag from PutFile or List, no sidecar until Stat makes both as Put would; one with
// another content type is hashed at once. From another file system (tmpfs here) it is
// copied.
func TestLocalPutFileLinks(t *testing.T) {
	dir := t.TempDir()
	s := storage.Local{Dir: filepath.Join(dir, "store")}
	ctx := t.Context()
	data := bytes.Repeat([]byte("segment "), 10000)
	src := filepath.Join(dir, "spool", "0001.ts")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// An old object of the same size and its sidecar are replaced; the sidecar must not
	// describe the new data.
	prev := put(t, s, "live/cam/0001.ts", bytes.Repeat([]byte("previous"), 10000), "")
	if err := os.Chtimes(src, prev.ModTime, prev.ModTime); err != nil {
		t.Fatal(err)
	}
	obj, err := storage.PutFile(ctx, s, "live/cam/0001.ts", src, "")
	if err != nil {
		t.Fatal(err)
	}
	if obj.Key != "live/cam/0001.ts" || obj.Size != int64(len(data)) || obj.ETag != "" {
		t.Errorf("PutFile = %+v, want the key, %d bytes, no ETag yet", obj, len(data))
	}
	sidecar := filepath.Join(s.Dir, "live", "cam", "0001.ts.livetape-meta")
	if _, err := os.Stat(sidecar); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a sidecar is there before the first read: %v", err)
	}
	if objs, err := s.List(ctx, "live/cam/"); err != nil || len(objs) != 1 || objs[0].Size != int64(len(data)) || objs[0].ETag != "" {
		t.Errorf("List = %+v, %v; want the object, no ETag (a listing hashes nothing)", objs, err)
	}
	si, _ := os.Stat(src)
	oi, err := os.Stat(filepath.Join(s.Dir, "live", "cam", "0001.ts"))
	if err != nil || !os.SameFile(si, oi) {
		t.Fatalf("the object is not the spool's file linked: %v", err)
	}
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stat(ctx, "live/cam/0001.ts")
	if err != nil {
		t.Fatal(err)
	}
	checkObject(t, "Stat after the spool removed its name", st, "live/cam/0001.ts", data, "video/mp2t")
	if _, err := os.Stat(sidecar); err != nil {
		t.Errorf("Stat made no sidecar: %v", err)
	}
	if objs, err := s.List(ctx, "live/cam/"); err != nil || len(objs) != 1 {
		t.Errorf("List = %v, %v", objs, err)
	} else {
		checkObject(t, "List after Stat", objs[0], "live/cam/0001.ts", data, "video/mp2t")
	}
	// Not a segment's default content type: hashed as it is stored.
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	obj, err = storage.PutFile(ctx, s, "live/cam/typed.ts", src, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	checkObject(t, "PutFile with a content type", obj, "live/cam/typed.ts", data, "application/octet-stream")
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.Dir, "live", "cam"))
	if len(entries) != 4 {
		t.Errorf("folder holds %d entries, want two objects and their sidecars (no temporary left)", len(entries))
	}

	// Another file system: copied.
	shm, err := os.MkdirTemp("/dev/shm", "livetape-test-")
	if err != nil {
		t.Fatalf("tmpfs for a second file system: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	other := filepath.Join(shm, "0002.ts")
	if err := os.WriteFile(other, data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	obj, err = storage.PutFile(ctx, s, "live/cam/0002.ts", other, "")
	if err != nil {
		t.Fatal(err)
	}
	checkObject(t, "PutFile from tmpfs", obj, "live/cam/0002.ts", data[:1000], "video/mp2t")
	oi, _ = os.Stat(filepath.Join(s.Dir, "live", "cam", "0002.ts"))
	if si, _ := os.Stat(other); os.SameFile(si, oi) {
		t.Error("a file of another file system is linked")
	}

	// A missing file is an error that says so.
	if _, err := storage.PutFile(ctx, s, "live/cam/0003.ts", filepath.Join(dir, "nosuch.ts"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("PutFile of a missing file: %v", err)
	}
}

// TestLocalFolderRace puts and deletes keys in sibling folders under a deep shared path
// from many goroutines. A Delete removes the folders its key leaves empty, shared
// parents included, so a Put may find the folder it is creating gone halfway (mkdir of
// "a/b/c" after another goroutine removed "a/b"): Put must create it again, not fail.
func TestLocalFolderRace(t *testing.T) {
	s := storage.Local{Dir: t.TempDir()}
	putStatDelete(t, s, 8, 300, func(i int) string { return fmt.Sprintf("p/q/r/s/%d/x.ts", i) })
}
