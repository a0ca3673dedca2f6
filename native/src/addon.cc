// N-API surface: create/mount/stop a session, deliver requests to the JS dispatcher, and the
// reply functions JS calls when a handler settles. Request arguments travel through shared
// typed arrays (input scratch) and reply records likewise (output scratch), so a request
// costs a handful of N-API calls and no per-request objects beyond its strings.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "session.h"

namespace stria {
namespace {

napi_value undef(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

napi_value int_value(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

napi_value throw_error(napi_env env, const std::string &msg) {
  napi_throw_error(env, nullptr, msg.c_str());
  return nullptr;
}

bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return false;
  for (size_t i = argc; i < want; i++) argv[i] = undef(env);
  return true;
}

double get_double(napi_env env, napi_value v, double dflt = 0) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return dflt;
  return d;
}

bool get_string(napi_env env, napi_value v, std::string *out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  out->assign(len, '\0');
  size_t got = 0;
  if (napi_get_value_string_utf8(env, v, out->data(), len + 1, &got) != napi_ok) return false;
  out->resize(got);
  return true;
}

napi_value prop(napi_env env, napi_value obj, const char *name) {
  napi_value v = nullptr;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return undef(env);
  return v;
}

double num_prop(napi_env env, napi_value obj, const char *name, double dflt) {
  napi_value v = prop(env, obj, name);
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_number ? get_double(env, v) : dflt;
}

bool bool_prop(napi_env env, napi_value obj, const char *name) {
  bool b = false;
  napi_get_value_bool(env, prop(env, obj, name), &b);
  return b;
}

template <typename T>
bool typed_array(napi_env env, napi_value v, napi_typedarray_type want, T **data, size_t *len) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  napi_typedarray_type type;
  void *ptr;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, &ptr, &ab, &off) != napi_ok || type != want) return false;
  *data = static_cast<T *>(ptr);
  return true;
}

Session *session_arg(napi_env env, napi_value v) {
  void *p = nullptr;
  if (napi_get_value_external(env, v, &p) != napi_ok) return nullptr;
  return static_cast<Session *>(p);
}

uint32_t to_u32(double v) {
  if (!(v > 0)) return 0;
  if (v >= 4294967295.0) return 0xffffffffu;
  return static_cast<uint32_t>(v);
}

int64_t to_i64(double v) {
  if (std::isnan(v)) return 0;
  if (v >= 9.2e18) return INT64_MAX;
  if (v <= -9.2e18) return INT64_MIN;
  return static_cast<int64_t>(v);
}

uint64_t to_u64(double v) {
  if (!(v > 0)) return 0;
  if (v >= 1.8e19) return UINT64_MAX;
  return static_cast<uint64_t>(v);
}

long to_nsec(double v) {
  int64_t n = to_i64(v);
  return n < 0 ? 0 : n > 999999999 ? 999999999 : static_cast<long>(n);
}

double seconds(double v) { return v > 0 ? v : 0; }

void fill_stat(struct stat *st, const double *f, const uint64_t *u) {
  std::memset(st, 0, sizeof *st);
  st->st_ino = u[1];
  st->st_mode = to_u32(f[0]);
  st->st_nlink = to_u32(f[1]);
  st->st_uid = to_u32(f[2]);
  st->st_gid = to_u32(f[3]);
  st->st_rdev = to_u64(f[4]);
  st->st_size = to_i64(f[5]);
  st->st_blocks = to_i64(f[6]);
  st->st_blksize = to_u32(f[7]);
  st->st_atim.tv_sec = to_i64(f[8]);
  st->st_atim.tv_nsec = to_nsec(f[9]);
  st->st_mtim.tv_sec = to_i64(f[10]);
  st->st_mtim.tv_nsec = to_nsec(f[11]);
  st->st_ctim.tv_sec = to_i64(f[12]);
  st->st_ctim.tv_nsec = to_nsec(f[13]);
}

void fill_entry(Session *s, fuse_entry_param *e, size_t rec) {
  std::memset(e, 0, sizeof *e);
  const double *f = s->out_f + rec * OUT_F;
  const uint64_t *u = s->out_u + rec * OUT_U;
  e->ino = u[0];
  e->generation = to_u64(f[16]);
  e->attr_timeout = seconds(f[14]);
  e->entry_timeout = seconds(f[15]);
  fill_stat(&e->attr, f, u);
}

void fill_open(const double *f, fuse_file_info *fi) {
  std::memset(fi, 0, sizeof *fi);
  fi->fh = to_u64(f[0]);
  fi->direct_io = f[1] != 0;
  fi->keep_cache = f[2] != 0;
  fi->nonseekable = f[3] != 0;
}

// The pool buffer of a settled write goes back on the JS thread.
void give_back(napi_env env, Session *s, Buf *b) {
  if (b != nullptr) s->pool_put_js(env, b);
}

// Common shape of every reply function: (session, id, ...) -> rc.
// rc >= 0: delivered; REPLY_LATE: already answered; < 0 otherwise: -errno from the device.
struct Settled {
  Session *s = nullptr;
  Req *r = nullptr;
};

Settled settle_args(napi_env env, napi_value *argv) {
  Settled out;
  out.s = session_arg(env, argv[0]);
  if (out.s == nullptr) return out;
  bool mine;
  Buf *b;
  out.r = out.s->settle(get_double(env, argv[1], -1), &mine, &b);
  give_back(env, out.s, b);
  return out;
}

// Sends with the interrupt callback detached first, so it cannot run with a stale pointer.
template <typename F>
int send(Settled &st, F &&reply) {
  fuse_req_interrupt_func(st.r->req, nullptr, nullptr);
  int rc = reply(st.r->req);
  st.s->finish(st.r);
  return rc;
}

// ---- inline reading (JS thread) ----

void deliver(napi_env env, napi_value fn, Session *s, Req *r);

// Requests read per wake-up before other work gets its turn (libuv polls level-triggered,
// so what is left is read on the next loop iteration).
constexpr int INLINE_MAX_PER_WAKE = 16;

void deliver_inline(Session *s, std::vector<Req *> &batch) {
  napi_env env = s->env;
  napi_handle_scope hs;
  if (napi_open_handle_scope(env, &hs) != napi_ok) return;
  napi_value fn = nullptr, resource = nullptr;
  napi_get_reference_value(env, s->dispatch_ref, &fn);
  napi_get_reference_value(env, s->resource_ref, &resource);
  napi_callback_scope cs = nullptr;
  bool scoped = resource != nullptr && napi_open_callback_scope(env, resource, s->async_ctx, &cs) == napi_ok;
  for (Req *r : batch) deliver(env, fn, s, r);
  if (scoped) napi_close_callback_scope(env, cs);  // runs the microtasks the handlers queued
  napi_close_handle_scope(env, hs);
}

void inline_readable(uv_poll_t *h, int status, int events) {
  Session *s = static_cast<Session *>(h->data);
  if (s == nullptr || s->stop_started) return;
  s->inline_seen_ms.store(now_ms());
  std::vector<Req *> batch;
  tl_inline_batch = &batch;
  int rc = READ_DONE;
  for (int i = 0; i < INLINE_MAX_PER_WAKE && rc == READ_DONE; i++) rc = s->read_request(&s->inline_buf);
  tl_inline_batch = nullptr;
  if (!batch.empty()) {
    std::lock_guard<std::mutex> g(s->mu);
    s->stats.inline_read += batch.size();
  }
  if (rc == READ_GONE) {
    // Unmounted or aborted: stop looking (the fd stays readable) and let the loop threads see
    // it too; the last one to leave reports the end.
    uv_poll_stop(h);
    uint64_t one = 1;
    ssize_t ignored = write(s->wakefd, &one, sizeof one);
    (void)ignored;
  }
  if (!batch.empty()) deliver_inline(s, batch);
}

void start_inline(napi_env env, Session *s) {
  uv_loop_t *loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return;  // the loop threads read
  auto *h = new uv_poll_t();
  if (uv_poll_init(loop, h, s->fd) != 0) {
    delete h;
    return;
  }
  h->data = s;
  s->inline_seen_ms.store(now_ms());
  if (uv_poll_start(h, UV_READABLE, inline_readable) != 0) {
    uv_close(reinterpret_cast<uv_handle_t *>(h), [](uv_handle_t *x) { delete reinterpret_cast<uv_poll_t *>(x); });
    return;
  }
  s->inline_poll = h;
}

void stop_inline(napi_env env, Session *s) {
  if (s->inline_poll != nullptr) {
    uv_poll_t *h = s->inline_poll;
    s->inline_poll = nullptr;
    h->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t *>(h), [](uv_handle_t *x) { delete reinterpret_cast<uv_poll_t *>(x); });
  }
  if (s->inline_buf != nullptr) {
    s->pool_put_js(env, s->inline_buf);
    s->inline_buf = nullptr;
  }
}

// ---- session lifecycle ----

void session_finalize(napi_env, void *data, void *) {
  Session *s = static_cast<Session *>(data);
  s->external_gone = true;
  // Only a released session is unreachable from native threads.
  if (s->released) delete s;
}

size_t receive_buffer_size() {
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) page = 4096;
  size_t pages = 256;  // FUSE_MAX_MAX_PAGES of libfuse 3.14
  std::ifstream limit("/proc/sys/fs/fuse/max_pages_limit");
  size_t configured = 0;
  if (limit >> configured && configured > pages) pages = configured;
  return pages * static_cast<size_t>(page) + 0x1000;  // + FUSE_BUFFER_HEADER_SIZE
}

void call_js(napi_env env, napi_value fn, void *context, void *data);

napi_value CreateSession(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return nullptr;
  auto s = std::make_unique<Session>();
  s->env = env;
  Config &c = s->cfg;
  if (!get_string(env, prop(env, argv[0], "mountpoint"), &c.mountpoint) || c.mountpoint.empty())
    return throw_error(env, "createSession: mountpoint must be a string");
  napi_value args = prop(env, argv[0], "args");
  uint32_t nargs = 0;
  bool is_array = false;
  napi_is_array(env, args, &is_array);
  if (is_array) napi_get_array_length(env, args, &nargs);
  for (uint32_t i = 0; i < nargs; i++) {
    napi_value v;
    std::string a;
    napi_get_element(env, args, i, &v);
    if (!get_string(env, v, &a)) return throw_error(env, "createSession: args must be strings");
    c.args.push_back(a);
  }
  s->bufsize = receive_buffer_size();
  double max_io = static_cast<double>(s->bufsize - 0x1000);
  c.max_write = to_u32(std::min(num_prop(env, argv[0], "maxWrite", 1 << 20), max_io));
  c.max_read = to_u32(num_prop(env, argv[0], "maxRead", 0));
  c.max_readahead = to_u32(num_prop(env, argv[0], "maxReadahead", 1 << 20));
  c.max_background = to_u32(num_prop(env, argv[0], "maxBackground", 64));
  c.congestion_threshold = to_u32(num_prop(env, argv[0], "congestionThreshold", 48));
  c.writeback = bool_prop(env, argv[0], "writebackCache");
  c.timeout_ms = to_i64(num_prop(env, argv[0], "timeoutMs", 60000));
  c.threads = static_cast<int>(std::clamp(num_prop(env, argv[0], "threads", 2), 1.0, 16.0));
  c.optional = to_u32(num_prop(env, argv[0], "optional", 0));
  c.pool_idle = to_u32(num_prop(env, argv[0], "poolIdle", 32));
  c.inline_read = bool_prop(env, argv[0], "inlineRead");

  size_t n_in_f, n_in_u, n_out_f, n_out_u, n_intr;
  if (!typed_array(env, prop(env, argv[2], "inF"), napi_float64_array, &s->in_f, &n_in_f) || n_in_f < IN_F ||
      !typed_array(env, prop(env, argv[2], "inU"), napi_biguint64_array, &s->in_u, &n_in_u) || n_in_u < IN_U ||
      !typed_array(env, prop(env, argv[2], "outF"), napi_float64_array, &s->out_f, &n_out_f) ||
      !typed_array(env, prop(env, argv[2], "outU"), napi_biguint64_array, &s->out_u, &n_out_u) ||
      !typed_array(env, prop(env, argv[2], "intr"), napi_uint32_array, &s->intr, &n_intr))
    return throw_error(env, "createSession: bad scratch arrays");
  s->out_records = std::min(n_out_f / OUT_F, n_out_u / OUT_U);
  s->max_slots = std::min<size_t>(n_intr, size_t(1) << SLOT_BITS);
  if (s->out_records < 2 || s->max_slots < 1) return throw_error(env, "createSession: scratch arrays too small");
  napi_create_reference(env, argv[2], 1, &s->scratch);

  std::vector<char *> cargv;
  std::string prog = "stria";
  cargv.push_back(prog.data());
  for (std::string &a : c.args) cargv.push_back(a.data());
  fuse_args fa = FUSE_ARGS_INIT(static_cast<int>(cargv.size()), cargv.data());
  fuse_lowlevel_ops ops = make_ops(c.optional);
  last_fuse_log();
  s->se = fuse_session_new(&fa, &ops, sizeof ops, s.get());
  fuse_opt_free_args(&fa);
  if (s->se == nullptr) {
    napi_delete_reference(env, s->scratch);
    return throw_error(env, "fuse_session_new failed: " + last_fuse_log());
  }

  napi_value name;
  napi_create_string_utf8(env, "stria-fuse", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], nullptr, name, 0, 1, nullptr, nullptr, s.get(), call_js,
                                      &s->tsfn) != napi_ok) {
    fuse_session_destroy(s->se);
    napi_delete_reference(env, s->scratch);
    return throw_error(env, "createSession: cannot create the thread-safe function");
  }
  if (c.inline_read) {
    // Inline delivery calls the dispatcher from a libuv callback: it needs the function and
    // an async context to open a callback scope with (which runs the microtasks after).
    napi_value resource;
    napi_create_object(env, &resource);
    if (napi_create_reference(env, argv[1], 1, &s->dispatch_ref) != napi_ok ||
        napi_create_reference(env, resource, 1, &s->resource_ref) != napi_ok ||
        napi_async_init(env, resource, name, &s->async_ctx) != napi_ok) {
      s->release_js(env);
      return throw_error(env, "createSession: cannot set up inline delivery");
    }
  }
  napi_value ext;
  napi_create_external(env, s.get(), session_finalize, nullptr, &ext);
  s.release();
  return ext;
}

napi_value Mount(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return nullptr;
  Session *s = session_arg(env, argv[0]);
  if (s == nullptr || s->mounted || s->released) return throw_error(env, "mount: session is not mountable");
  last_fuse_log();
  if (fuse_session_mount(s->se, s->cfg.mountpoint.c_str()) != 0) {
    std::string why = last_fuse_log();
    return throw_error(env, "fuse mount of " + s->cfg.mountpoint + " failed" + (why.empty() ? "" : ": " + why));
  }
  s->fd = fuse_session_fd(s->se);
  int fl = fcntl(s->fd, F_GETFL);
  fcntl(s->fd, F_SETFL, fl | O_NONBLOCK);
  s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s->mounted = true;
  try {
    s->start_threads();
  } catch (const std::exception &e) {
    return throw_error(env, std::string("mount: cannot start threads: ") + e.what());
  }
  if (s->cfg.inline_read) start_inline(env, s);
  return undef(env);
}

// Starts the teardown; M_STOPPED follows. false: nothing to tear down (never mounted).
napi_value Stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return nullptr;
  Session *s = session_arg(env, argv[0]);
  napi_value out;
  bool started = false;
  if (s != nullptr && s->mounted && !s->stop_started) {
    s->stop_started = true;
    stop_inline(env, s);  // before the teardown thread closes /dev/fuse
    try {
      s->start_teardown();
      started = true;
    } catch (const std::exception &e) {
      return throw_error(env, std::string("stop: cannot start teardown: ") + e.what());
    }
  } else if (s != nullptr && s->stop_started && !s->released) {
    started = true;
  }
  napi_get_boolean(env, started, &out);
  return out;
}

napi_value Release(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return nullptr;
  Session *s = session_arg(env, argv[0]);
  if (s != nullptr) {
    stop_inline(env, s);
    s->release_js(env);
  }
  return undef(env);
}

struct UmountWork {
  napi_async_work work = nullptr;
  napi_ref cb = nullptr;
  std::string path;
  int flags = 0;
  int err = 0;
};

napi_value Umount(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return nullptr;
  Session *s = session_arg(env, argv[0]);
  if (s == nullptr) return throw_error(env, "umount: bad session");
  auto *w = new UmountWork();
  w->path = s->cfg.mountpoint;
  bool lazy = false;
  napi_get_value_bool(env, argv[1], &lazy);
  w->flags = lazy ? MNT_DETACH : 0;
  napi_create_reference(env, argv[2], 1, &w->cb);
  napi_value name;
  napi_create_string_utf8(env, "stria-fuse-umount", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(
      env, nullptr, name,
      // Off the JS thread: a plain umount flushes dirty pages through this very filesystem.
      [](napi_env, void *data) {
        auto *w = static_cast<UmountWork *>(data);
        w->err = umount2(w->path.c_str(), w->flags) == 0 ? 0 : errno;
      },
      [](napi_env env, napi_status, void *data) {
        auto *w = static_cast<UmountWork *>(data);
        napi_value cb, global, arg = int_value(env, w->err), ignored;
        napi_get_reference_value(env, w->cb, &cb);
        napi_get_global(env, &global);
        napi_call_function(env, global, cb, 1, &arg, &ignored);
        napi_delete_reference(env, w->cb);
        napi_delete_async_work(env, w->work);
        delete w;
      },
      w, &w->work);
  napi_queue_async_work(env, w->work);
  return undef(env);
}

// notify(session, entry, ino|parent (bigint), off, len, name, token) -> queued
napi_value NotifyInval(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!get_args(env, info, 7, argv)) return nullptr;
  Session *s = session_arg(env, argv[0]);
  napi_value out;
  if (s == nullptr || !s->mounted || s->stop_started) {
    napi_get_boolean(env, false, &out);
    return out;
  }
  Notify n;
  napi_get_value_bool(env, argv[1], &n.entry);
  bool lossless;
  if (napi_get_value_bigint_uint64(env, argv[2], &n.ino, &lossless) != napi_ok)
    return throw_error(env, "notify: inode must be a bigint");
  n.off = to_i64(get_double(env, argv[3]));
  n.len = to_i64(get_double(env, argv[4]));
  if (n.entry && !get_string(env, argv[5], &n.name)) return throw_error(env, "notify: name must be a string");
  n.token = get_double(env, argv[6]);
  s->enqueue_notify(std::move(n));
  napi_get_boolean(env, true, &out);
  return out;
}

napi_value GetStats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return nullptr;
  Session *s = session_arg(env, argv[0]);
  if (s == nullptr) return undef(env);
  Stats st;
  size_t in_flight = 0, pooled = 0;
  {
    std::lock_guard<std::mutex> g(s->mu);
    st = s->stats;
    for (Req *r : s->slots)
      if (r->in_use) in_flight++;
  }
  {
    std::lock_guard<std::mutex> g(s->pool_mu);
    pooled = s->pool_free.size();
  }
  napi_value o;
  napi_create_object(env, &o);
  auto set = [&](const char *k, double v) {
    napi_value x;
    napi_create_double(env, v, &x);
    napi_set_named_property(env, o, k, x);
  };
  set("requests", static_cast<double>(st.requests));
  set("timeouts", static_cast<double>(st.timeouts));
  set("interrupts", static_cast<double>(st.interrupts));
  set("late", static_cast<double>(st.late));
  set("zeroCopyWrites", static_cast<double>(st.stolen));
  set("copiedWrites", static_cast<double>(st.copied));
  set("inlineRequests", static_cast<double>(st.inline_read));
  set("inFlight", static_cast<double>(in_flight));
  set("pooledBuffers", static_cast<double>(pooled));
  return o;
}

// ---- delivery to JS ----

void deliver(napi_env env, napi_value fn, Session *s, Req *r) {
  bool skip = false;
  Buf *drop = nullptr;
  {
    std::lock_guard<std::mutex> g(s->mu);
    if (r->claimed || s->stop_started) {
      // Answered already (timeout, interrupt, teardown): the handler need not run.
      skip = true;
      r->js_done = true;
      drop = r->buf;
      r->buf = nullptr;
      s->maybe_free(r);
    }
  }
  if (skip) {
    give_back(env, s, drop);
    return;
  }
  const int kind = r->item.kind;
  const double id = static_cast<double>((static_cast<uint64_t>(r->gen) << SLOT_BITS) | r->idx);
  std::memcpy(s->in_f, r->f, sizeof r->f);
  s->in_u[0] = r->u[0];
  s->in_u[1] = r->u[1];
  napi_value argv[5];
  napi_create_int32(env, kind, &argv[0]);
  napi_create_double(env, id, &argv[1]);
  argv[2] = argv[3] = argv[4] = undef(env);
  if (!r->s1.empty()) napi_create_string_utf8(env, r->s1.data(), r->s1.size(), &argv[2]);
  if (kind == K_SYMLINK || kind == K_RENAME) napi_create_string_utf8(env, r->s2.data(), r->s2.size(), &argv[3]);
  if (kind == K_WRITE) {
    napi_value ab = r->buf != nullptr ? s->buf_arraybuffer(env, r->buf) : nullptr;
    if (ab != nullptr) {
      argv[4] = ab;
      std::lock_guard<std::mutex> g(s->mu);
      s->stats.stolen++;
    } else {
      size_t off = r->buf != nullptr ? static_cast<size_t>(r->f[8]) : 0;
      const char *src = r->buf != nullptr ? r->buf->mem + off : r->bytes.data();
      size_t len = r->buf != nullptr ? static_cast<size_t>(r->f[4]) : r->bytes.size();
      void *ignored;
      napi_create_buffer_copy(env, len, src, &ignored, &argv[4]);
      std::lock_guard<std::mutex> g(s->mu);
      s->stats.copied++;
    }
  } else if (kind == K_SETXATTR) {
    void *ignored;
    napi_create_buffer_copy(env, r->bytes.size(), r->bytes.data(), &ignored, &argv[4]);
  }
  napi_value global, result;
  napi_get_global(env, &global);
  if (napi_call_function(env, global, fn, 5, argv, &result) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    // The dispatcher failed before the handler could answer: answer EIO unless it did.
    bool mine;
    Buf *b;
    Req *own = s->settle(id, &mine, &b);
    give_back(env, s, b);
    if (own != nullptr) {
      Settled st{s, own};
      send(st, [](fuse_req_t q) { return fuse_reply_err(q, EIO); });
    }
  }
}

void call_message(napi_env env, napi_value fn, Session *, Item *it) {
  napi_value argv[5];
  napi_create_int32(env, it->kind, &argv[0]);
  argv[1] = int_value(env, 0);
  argv[2] = argv[3] = argv[4] = undef(env);
  if (it->kind == M_FORGET) {
    auto *m = reinterpret_cast<ForgetMsg *>(it);
    void *data;
    napi_value ab;
    napi_create_arraybuffer(env, m->pairs.size() * sizeof(uint64_t), &data, &ab);
    std::memcpy(data, m->pairs.data(), m->pairs.size() * sizeof(uint64_t));
    napi_create_typedarray(env, napi_biguint64_array, m->pairs.size(), ab, 0, &argv[4]);
    delete m;
  } else if (it->kind == M_NOTIFY_DONE) {
    auto *m = reinterpret_cast<NotifyMsg *>(it);
    napi_create_double(env, m->token, &argv[1]);
    argv[4] = int_value(env, m->rc);
    delete m;
  }
  napi_value global, result;
  napi_get_global(env, &global);
  if (napi_call_function(env, global, fn, 5, argv, &result) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
  }
}

void call_js(napi_env env, napi_value fn, void *context, void *data) {
  Session *s = static_cast<Session *>(context);
  Item *it = static_cast<Item *>(data);
  if (env == nullptr || fn == nullptr) {  // the function is going away: nobody will settle these
    if (it->kind < M_INIT) {
      Req *r = reinterpret_cast<Req *>(it);
      std::lock_guard<std::mutex> g(s->mu);
      r->js_done = true;
      if (r->buf != nullptr) {
        s->pool_put(r->buf);
        r->buf = nullptr;
      }
      s->maybe_free(r);
    } else if (it->kind == M_FORGET) {
      delete reinterpret_cast<ForgetMsg *>(it);
    } else if (it->kind == M_NOTIFY_DONE) {
      delete reinterpret_cast<NotifyMsg *>(it);
    }
    return;
  }
  if (it->kind < M_INIT) deliver(env, fn, s, reinterpret_cast<Req *>(it));
  else call_message(env, fn, s, it);
}

// ---- replies ----

#define REPLY_PROLOGUE(N)                             \
  napi_value argv[N];                                 \
  if (!get_args(env, info, N, argv)) return nullptr;  \
  Settled st = settle_args(env, argv);                \
  if (st.s == nullptr) return throw_error(env, "reply: bad session"); \
  if (st.r == nullptr) return int_value(env, REPLY_LATE);

napi_value ReplyErr(napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(3)
  int e = static_cast<int>(get_double(env, argv[2], EIO));
  if (e < 0 || e >= 1000) e = EIO;
  return int_value(env, send(st, [e](fuse_req_t q) { return fuse_reply_err(q, e); }));
}

napi_value ReplyEntry(napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(2)
  fuse_entry_param e;
  fill_entry(st.s, &e, 0);
  return int_value(env, send(st, [&e](fuse_req_t q) { return fuse_reply_entry(q, &e); }));
}

napi_value ReplyCreate(napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(2)
  fuse_entry_param e;
  fuse_file_info fi;
  fill_entry(st.s, &e, 0);
  fill_open(st.s->out_f + OUT_F, &fi);
  return int_value(env, send(st, [&](fuse_req_t q) { return fuse_reply_create(q, &e, &fi); }));
}

napi_value ReplyAttr(napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(2)
  struct stat attr;
  fill_stat(&attr, st.s->out_f, st.s->out_u);
  double timeout = seconds(st.s->out_f[14]);
  return int_value(env, send(st, [&](fuse_req_t q) { return fuse_reply_attr(q, &attr, timeout); }));
}

napi_value ReplyReadlink(napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(3)
  std::string target;
  if (!get_string(env, argv[2], &target) || target.empty() || target.find('\0') != std::string::npos)
    return int_value(env, send(st, [](fuse_req_t q) { return fuse_reply_err(q, EIO); }));
  return int_value(env, send(st, [&](fuse_req_t q) { return fuse_reply_readlink(q, target.c_str()); }));
}

napi_value ReplyOpen(napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(2)
  fuse_file_info fi;
  fill_open(st.s->out_f, &fi);
  return int_value(env, send(st, [&](fuse_req_t q) { return fuse_reply_open(q, &fi); }));
}

napi_value ReplyWrite(napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(3)
  size_t len = static_cast<size_t>(st.r->f[4]);
  size_t n = std::min(static_cast<size_t>(to_u64(get_double(env, argv[2]))), len);
  return int_value(env, send(st, [n](fuse_req_t q) { return fuse_reply_write(q, n); }));
}

// Data replies: read (at most `size` bytes), getxattr / listxattr (size 0 asks for the length,
// a value longer than `size` is ERANGE).
napi_value ReplyBuf(napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(3)
  const char *data = nullptr;
  size_t len = 0;
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t != napi_undefined && t != napi_null) {
    napi_typedarray_type type;
    void *ptr;
    napi_value ab;
    size_t off, count;
    bool is = false;
    napi_is_typedarray(env, argv[2], &is);
    if (!is || napi_get_typedarray_info(env, argv[2], &type, &count, &ptr, &ab, &off) != napi_ok ||
        (type != napi_uint8_array && type != napi_int8_array && type != napi_uint8_clamped_array))
      return int_value(env, send(st, [](fuse_req_t q) { return fuse_reply_err(q, EIO); }));
    data = static_cast<const char *>(ptr);
    len = count;
  }
  const int kind = st.r->item.kind;
  const size_t size = st.r->size;
  if (kind == K_GETXATTR || kind == K_LISTXATTR) {
    if (size == 0) return int_value(env, send(st, [len](fuse_req_t q) { return fuse_reply_xattr(q, len); }));
    if (len > size) return int_value(env, send(st, [](fuse_req_t q) { return fuse_reply_err(q, ERANGE); }));
  } else if (kind == K_READ) {
    len = std::min(len, size);
  } else {
    return int_value(env, send(st, [](fuse_req_t q) { return fuse_reply_err(q, EIO); }));
  }
  return int_value(env, send(st, [data, len](fuse_req_t q) { return fuse_reply_buf(q, data, len); }));
}

// A read reply gathered from several buffers (the client's cached pages) in one writev, so
// the data is never assembled into one buffer. The buffers are the caller's JS objects,
// alive for this synchronous call; the caller must not hand any of them to something that
// may overwrite it before the call returns (it returns once the kernel has copied the data).
// At most `size` bytes go out; more pieces than one writev takes are copied into one buffer.
constexpr size_t IOV_PIECES_MAX = 1000;  // below IOV_MAX (1024), leaving room for libfuse's header

napi_value ReplyIov(napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(3)
  auto fail = [&st]() { return send(st, [](fuse_req_t q) { return fuse_reply_err(q, EIO); }); };
  bool is_array = false;
  uint32_t n = 0;
  if (st.r->item.kind != K_READ || napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[2], &n) != napi_ok)
    return int_value(env, fail());
  std::vector<iovec> iov;
  iov.reserve(n);
  size_t left = st.r->size;
  for (uint32_t i = 0; i < n && left > 0; i++) {
    napi_value v;
    uint8_t *ptr = nullptr;
    size_t count = 0;
    if (napi_get_element(env, argv[2], i, &v) != napi_ok || !typed_array(env, v, napi_uint8_array, &ptr, &count))
      return int_value(env, fail());
    const size_t len = std::min(count, left);
    if (len == 0) continue;
    iov.push_back(iovec{ptr, len});
    left -= len;
  }
  if (iov.empty()) return int_value(env, send(st, [](fuse_req_t q) { return fuse_reply_buf(q, nullptr, 0); }));
  if (iov.size() > IOV_PIECES_MAX) {
    std::vector<char> flat;
    flat.reserve(st.r->size - left);
    for (const iovec &v : iov) flat.insert(flat.end(), static_cast<char *>(v.iov_base), static_cast<char *>(v.iov_base) + v.iov_len);
    return int_value(env, send(st, [&flat](fuse_req_t q) { return fuse_reply_buf(q, flat.data(), flat.size()); }));
  }
  return int_value(env, send(st, [&iov](fuse_req_t q) { return fuse_reply_iov(q, iov.data(), static_cast<int>(iov.size())); }));
}

napi_value ReplyStatfs(napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(2)
  const double *f = st.s->out_f;
  struct statvfs sv;
  std::memset(&sv, 0, sizeof sv);
  sv.f_bsize = to_u64(f[0]);
  sv.f_frsize = to_u64(f[1]);
  sv.f_blocks = to_u64(f[2]);
  sv.f_bfree = to_u64(f[3]);
  sv.f_bavail = to_u64(f[4]);
  sv.f_files = to_u64(f[5]);
  sv.f_ffree = to_u64(f[6]);
  sv.f_favail = to_u64(f[7]);
  sv.f_namemax = to_u64(f[8]);
  return int_value(env, send(st, [&sv](fuse_req_t q) { return fuse_reply_statfs(q, &sv); }));
}

napi_value ReplyLock(napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(2)
  const double *f = st.s->out_f;
  struct flock lk;
  std::memset(&lk, 0, sizeof lk);
  lk.l_type = static_cast<short>(f[0]);
  lk.l_whence = SEEK_SET;
  lk.l_start = to_i64(f[1]);
  lk.l_len = f[2] >= 9007199254740991.0 ? 0 : to_i64(f[2]) - lk.l_start + 1;
  lk.l_pid = static_cast<pid_t>(to_i64(f[3]));
  return int_value(env, send(st, [&lk](fuse_req_t q) { return fuse_reply_lock(q, &lk); }));
}

// replyDir(session, id, names, count): packs records 0..count-1 until `size` is full.
// Returns how many entries were sent (the kernel counts a lookup for each "plus" entry).
napi_value ReplyDir(napi_env env, napi_callback_info info) {
  REPLY_PROLOGUE(4)
  Session *s = st.s;
  const bool plus = st.r->item.kind == K_READDIRPLUS;
  const size_t cap = st.r->size;
  size_t count = std::min(static_cast<size_t>(to_u64(get_double(env, argv[3]))), s->out_records);
  std::vector<char> buf(cap);
  size_t pos = 0, packed = 0;
  std::string name;
  for (size_t i = 0; i < count; i++) {
    napi_value v;
    if (napi_get_element(env, argv[2], static_cast<uint32_t>(i), &v) != napi_ok || !get_string(env, v, &name) ||
        name.empty())
      break;
    const double *f = s->out_f + i * OUT_F;
    const uint64_t *u = s->out_u + i * OUT_U;
    off_t next = static_cast<off_t>(to_i64(f[17]));
    size_t need;
    if (plus) {
      fuse_entry_param e;
      if (f[18] != 0) {
        fill_entry(s, &e, i);
      } else {  // no attributes: the kernel only learns the name
        std::memset(&e, 0, sizeof e);
        e.attr.st_ino = u[1];
        e.attr.st_mode = to_u32(f[19]);
      }
      need = fuse_add_direntry_plus(st.r->req, buf.data() + pos, cap - pos, name.c_str(), &e, next);
    } else {
      struct stat sb;
      std::memset(&sb, 0, sizeof sb);
      sb.st_ino = u[1];
      sb.st_mode = to_u32(f[19]);
      need = fuse_add_direntry(st.r->req, buf.data() + pos, cap - pos, name.c_str(), &sb, next);
    }
    if (need > cap - pos) break;
    pos += need;
    packed++;
  }
  int rc = send(st, [&](fuse_req_t q) { return fuse_reply_buf(q, buf.data(), pos); });
  return int_value(env, rc < 0 ? rc : static_cast<int64_t>(packed));
}

napi_value Init(napi_env env, napi_value exports) {
  install_fuse_log();
  struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"createSession", CreateSession}, {"mount", Mount},       {"stop", Stop},
      {"release", Release},             {"umount", Umount},     {"notify", NotifyInval},
      {"stats", GetStats},              {"replyErr", ReplyErr}, {"replyEntry", ReplyEntry},
      {"replyCreate", ReplyCreate},     {"replyAttr", ReplyAttr}, {"replyReadlink", ReplyReadlink},
      {"replyOpen", ReplyOpen},         {"replyWrite", ReplyWrite}, {"replyBuf", ReplyBuf},
      {"replyIov", ReplyIov},
      {"replyStatfs", ReplyStatfs},     {"replyLock", ReplyLock}, {"replyDir", ReplyDir},
  };
  for (auto &f : fns) {
    napi_value v;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &v);
    napi_set_named_property(env, exports, f.name, v);
  }
  napi_value late = int_value(env, REPLY_LATE);
  napi_set_named_property(env, exports, "REPLY_LATE", late);
  return exports;
}

}  // namespace
}  // namespace stria

NAPI_MODULE(NODE_GYP_MODULE_NAME, stria::Init)
