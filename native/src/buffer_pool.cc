// Receive buffers, reused: a write keeps the buffer it arrived in until its handler settles,
// and JS reads it through an external ArrayBuffer made once per buffer, so neither a copy
// nor an allocation happens per request once the pool is warm.
#include <cstdlib>

#include "session.h"

namespace stria {

static void ab_finalize(napi_env, void *, void *hint) {
  Buf *b = static_cast<Buf *>(hint);
  free(b->mem);
  delete b;
}

Buf *Session::pool_get() {
  {
    std::lock_guard<std::mutex> g(pool_mu);
    if (!pool_free.empty()) {
      Buf *b = pool_free.back();
      pool_free.pop_back();
      return b;
    }
  }
  void *mem = nullptr;
  if (posix_memalign(&mem, 4096, bufsize) != 0) return nullptr;
  Buf *b = new Buf();
  b->mem = static_cast<char *>(mem);
  b->size = bufsize;
  return b;
}

// Any thread. Trimming happens on the JS thread only (it may drop a JS reference).
void Session::pool_put(Buf *b) {
  std::lock_guard<std::mutex> g(pool_mu);
  pool_free.push_back(b);
}

static void destroy_buf(napi_env env, Buf *b) {
  if (b->ab != nullptr) {
    napi_delete_reference(env, b->ab);  // the ArrayBuffer's finalizer frees the memory
  } else {
    free(b->mem);
    delete b;
  }
}

void Session::pool_put_js(napi_env env, Buf *b) {
  {
    std::lock_guard<std::mutex> g(pool_mu);
    if (!pool_closed && pool_free.size() < cfg.pool_idle) {
      pool_free.push_back(b);
      return;
    }
  }
  destroy_buf(env, b);
}

void Session::pool_close_js(napi_env env) {
  std::vector<Buf *> all;
  {
    std::lock_guard<std::mutex> g(pool_mu);
    pool_closed = true;
    all.swap(pool_free);
  }
  for (Buf *b : all) destroy_buf(env, b);
}

// nullptr when this runtime refuses external buffers; the caller copies instead.
napi_value Session::buf_arraybuffer(napi_env env, Buf *b) {
  napi_value ab = nullptr;
  if (b->ab != nullptr) {
    if (napi_get_reference_value(env, b->ab, &ab) != napi_ok) return nullptr;
    return ab;
  }
  if (napi_create_external_arraybuffer(env, b->mem, b->size, ab_finalize, b, &ab) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    return nullptr;
  }
  if (napi_create_reference(env, ab, 1, &b->ab) != napi_ok) return nullptr;
  return ab;
}

}  // namespace stria
