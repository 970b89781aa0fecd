// The API client of the console: every call goes to /api/v1 of the host that served
// the page, with the API key the operator entered (kept in localStorage).

const keyItem = 'livetape.apiKey';

export function apiKey() {
  return localStorage.getItem(keyItem) || '';
}

export function setAPIKey(key) {
  if (key) localStorage.setItem(keyItem, key);
  else localStorage.removeItem(keyItem);
}

export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// api calls method path with an optional JSON body and returns the decoded answer
// (null for 204). A non-2xx answer throws an APIError with the server's message.
export async function api(method, path, body) {
  const headers = {};
  const key = apiKey();
  if (key) headers.Authorization = 'Bearer ' + key;
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: the text is the message
  }
  if (!resp.ok) throw new APIError(resp.status, (data && data.error) || text || resp.statusText);
  return data;
}

// explain turns an error into what the operator should do about it.
export function explain(err) {
  if (err instanceof APIError) {
    if (err.status === 401) {
      return 'The server requires an API key: enter its LIVETAPE_API_KEY above. (' + err.message + ')';
    }
    if (err.status === 403) {
      return 'No API key is set on the server, so its API answers only clients on the same host (loopback). ' +
        'Open the console from the server itself, or set LIVETAPE_API_KEY on the server and enter it above.';
    }
    return err.status + ': ' + err.message;
  }
  return String(err && err.message ? err.message : err);
}

// isAuthError reports whether err says the page may not use the API at all.
export function isAuthError(err) {
  return err instanceof APIError && (err.status === 401 || err.status === 403);
}
