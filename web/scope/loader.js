// A model folder's files, fetched with progress and kept in the browser's Cache API:
// a second visit starts without downloading the weights again. A model whose files
// change at the same URL is fetched anew once the cache is cleared (clearModelCache,
// the page's "forget it" button) or when published under a new URL.

const CACHE = "infiniscope-models-v1";
export const FILES = ["config.json", "model.safetensors", "tokenizer.json"];

/** The cache, where the browser offers one (secure contexts: https, localhost). */
async function openCache() {
  try {
    return "caches" in globalThis ? await caches.open(CACHE) : null;
  } catch {
    return null; // storage refused (private mode, quota): fetch every time
  }
}

/**
 * The bytes of every file of the model folder at `base` (FILES, in order), from the
 * cache or the network. `onProgress({ loaded, total, cached })` follows the bytes as
 * they arrive (total = the sum of Content-Length headers; 0 when one is missing).
 */
export async function fetchModel(base, onProgress = () => {}) {
  const cache = await openCache();
  const urls = FILES.map((name) => new URL(name, base).href);
  const hits = await Promise.all(urls.map((url) => cache?.match(url)));
  if (hits.every(Boolean)) {
    const files = await Promise.all(hits.map(async (r) => new Uint8Array(await r.arrayBuffer())));
    const size = files.reduce((s, f) => s + f.length, 0);
    onProgress({ loaded: size, total: size, cached: true });
    return files;
  }
  const responses = await Promise.all(urls.map(request));
  const totals = responses.map((r) => Number(r.headers.get("content-length")) || 0);
  const total = totals.every((t) => t > 0) ? totals.reduce((a, b) => a + b, 0) : 0;
  const loaded = new Array(urls.length).fill(0);
  const files = await Promise.all(
    responses.map((response, i) =>
      readAll(response, (n) => {
        loaded[i] = n;
        onProgress({ loaded: loaded.reduce((a, b) => a + b, 0), total, cached: false });
      }),
    ),
  );
  if (cache) {
    // Stored only once all three arrived; a failed write just means no cache.
    await Promise.all(urls.map((url, i) => cache.put(url, new Response(files[i])))).catch(() => {});
  }
  return files;
}

/** Forgets the cached copy of the model at `base` (after it failed to load, say). */
export async function forgetModel(base) {
  const cache = await openCache();
  await Promise.all(FILES.map((name) => cache?.delete(new URL(name, base).href)));
}

/** Forgets every cached model; resolves to the bytes freed. */
export async function clearModelCache() {
  const bytes = await cachedBytes();
  if ("caches" in globalThis) await caches.delete(CACHE).catch(() => false);
  return bytes;
}

/** Bytes of every cached model. */
export async function cachedBytes() {
  const cache = await openCache();
  if (!cache) return 0;
  let bytes = 0;
  for (const request of await cache.keys()) bytes += (await (await cache.match(request)).arrayBuffer()).byteLength;
  return bytes;
}

async function request(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`could not fetch ${url}: ${e.message}`);
  }
  if (!response.ok) throw new Error(`could not fetch ${url}: HTTP ${response.status} ${response.statusText}`);
  return response;
}

/** A response's body, reporting the bytes read so far as they arrive. */
async function readAll(response, onBytes) {
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    onBytes(size);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}
