// A libfuse3 low-level session whose requests are answered from JavaScript.
//
// Threads:
//   JS thread            with inline reading (the default), reads /dev/fuse itself when libuv
//                        reports it readable, lets libfuse decode and calls the handler at once:
//                        one thread wake-up per request instead of two.
//   loop threads (1..n)  without inline reading, read /dev/fuse (non-blocking + epoll), let
//                        libfuse decode, and hand each request to JS through a thread-safe
//                        function; they never wait for JS. With inline reading they are the
//                        backstop: they read (and hand over) only what the JS thread has left
//                        waiting for a while, so a stuck JS thread still gets its requests
//                        read and timed out.
//   service thread       answers requests that were interrupted (EINTR) or ran out of time
//                        (ETIMEDOUT), so a stuck handler (or a stuck JS thread) never hangs
//                        the caller.
//   notifier threads     sends inval_inode / inval_entry notifications: the kernel may need a
//                        reply from JS to finish one, so they must not run on the JS thread.
//   teardown thread      stops all of the above without blocking the JS thread.
// Replies are sent from whichever thread settles the request (fuse_reply_* is thread-safe);
// a per-request claim under `mu` guarantees exactly one reply.
#pragma once

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace stria {

// Request kinds and messages; mirrored in src/fuse/native-addon.ts.
enum Kind : int {
  K_LOOKUP = 1, K_GETATTR, K_SETATTR, K_READLINK, K_MKNOD, K_MKDIR, K_UNLINK, K_RMDIR,
  K_SYMLINK, K_RENAME, K_LINK, K_OPEN, K_READ, K_WRITE, K_FLUSH, K_RELEASE, K_FSYNC,
  K_OPENDIR, K_READDIR, K_READDIRPLUS, K_RELEASEDIR, K_FSYNCDIR, K_STATFS, K_SETXATTR,
  K_GETXATTR, K_LISTXATTR, K_REMOVEXATTR, K_CREATE, K_FALLOCATE, K_GETLK, K_SETLK, K_FLOCK,
  M_INIT = 100, M_ENDED, M_FORGET, M_NOTIFY_DONE, M_STOPPED,
};

// Handlers the JS ops object may lack; absent ones are not registered with libfuse.
enum Optional : uint32_t {
  HAS_FORGET = 1u << 0, HAS_FLUSH = 1u << 1, HAS_FSYNC = 1u << 2, HAS_OPENDIR = 1u << 3,
  HAS_RELEASEDIR = 1u << 4, HAS_FSYNCDIR = 1u << 5, HAS_FALLOCATE = 1u << 6,
  HAS_GETLK = 1u << 7, HAS_SETLK = 1u << 8, HAS_FLOCK = 1u << 9,
};

constexpr int IN_F = 24;          // doubles per request in the shared input scratch
constexpr int IN_U = 2;           // u64 per request in the shared input scratch
constexpr int OUT_F = 20;         // doubles per record in the shared output scratch
constexpr int OUT_U = 2;          // u64 per record in the shared output scratch
constexpr uint32_t SLOT_BITS = 20;
constexpr uint32_t SLOT_MASK = (1u << SLOT_BITS) - 1;
constexpr int REPLY_LATE = -100000;  // the request was already answered (timeout/interrupt/teardown)
// Writes at least this long keep the receive buffer they arrived in (no copy).
constexpr size_t STEAL_MIN = 32 * 1024;

struct Session;

struct Item {
  int kind;
};

// A receive buffer. While a write request holds it, JS sees it through one external
// ArrayBuffer created the first time (kept with a strong reference while pooled).
struct Buf {
  char *mem = nullptr;
  size_t size = 0;
  napi_ref ab = nullptr;  // JS thread only
};

struct Req {
  Item item{0};
  Session *s = nullptr;
  uint32_t idx = 0;
  uint32_t gen = 1;
  fuse_req_t req = nullptr;
  // Guarded by Session::mu.
  bool in_use = false;
  bool claimed = false;     // someone owns the one reply
  bool reply_sent = false;  // ... and has finished sending it
  bool js_done = false;     // JS settled (or will never see it)
  bool interrupted = false;
  bool timed = true;        // subject to the request timeout
  bool in_tl = false;
  Req *tprev = nullptr, *tnext = nullptr;
  int64_t deadline = 0;
  // Request arguments, laid out as the JS input scratch.
  double f[IN_F];
  uint64_t u[IN_U];
  size_t size = 0;  // read / readdir / xattr buffer size
  std::string s1, s2;
  Buf *buf = nullptr;        // write data lives in buf->mem (offset f[8])
  std::vector<char> bytes;   // short write data, setxattr value
};

struct ForgetMsg {
  Item item{M_FORGET};
  std::vector<uint64_t> pairs;  // ino, nlookup, ...
};

struct NotifyMsg {
  Item item{M_NOTIFY_DONE};
  double token = 0;
  int rc = 0;
};

struct Notify {
  bool entry = false;
  uint64_t ino = 0;  // inode, or parent for an entry
  int64_t off = 0, len = 0;
  std::string name;
  double token = 0;
};

struct Config {
  std::string mountpoint;
  std::vector<std::string> args;
  uint32_t max_write = 1 << 20, max_read = 1 << 20, max_readahead = 1 << 20;
  uint32_t max_background = 64, congestion_threshold = 48;
  bool writeback = false;
  int64_t timeout_ms = 60000;  // <= 0: no timeout
  int threads = 2;
  uint32_t optional = 0;
  size_t pool_idle = 32;
  bool inline_read = false;
  // inline reading: loop threads take over requests the JS thread left waiting this long
  int64_t backstop_ms = 200;
};

struct Stats {
  uint64_t requests = 0, timeouts = 0, interrupts = 0, late = 0, stolen = 0, copied = 0;
  uint64_t inline_read = 0;  // requests the JS thread read and delivered itself
};

struct Session {
  Config cfg;
  fuse_session *se = nullptr;
  int fd = -1;
  int wakefd = -1;
  size_t bufsize = 0;
  bool mounted = false;

  napi_env env = nullptr;
  napi_threadsafe_function tsfn = nullptr;
  napi_ref scratch = nullptr;
  double *in_f = nullptr;
  uint64_t *in_u = nullptr;
  double *out_f = nullptr;
  uint64_t *out_u = nullptr;
  size_t out_records = 0;
  uint32_t *intr = nullptr;
  size_t max_slots = 0;

  std::mutex mu;
  std::vector<Req *> slots;
  std::vector<Req *> free_reqs;
  Req *tl_head = nullptr, *tl_tail = nullptr;
  std::deque<Req *> intr_q;  // interrupted and claimed, EINTR still to send
  std::condition_variable svc_cv;
  std::condition_variable idle_cv;  // replying dropped to 0
  int replying = 0;                 // claimed but not yet sent
  bool svc_stop = false;
  std::thread svc;
  Stats stats;

  std::mutex pool_mu;
  std::vector<Buf *> pool_free;
  bool pool_closed = false;

  // Two lanes: attribute-only inode invalidations never wait on a kernel lock and get their
  // own thread, so they are never stuck behind page or name invalidations, which can wait
  // for this filesystem's own replies (page locks, directory locks) and get a small pool.
  std::mutex nmu;
  std::condition_variable ncv[2];
  std::deque<Notify> nq[2];
  bool nstop = false;
  std::vector<std::thread> notifiers;

  std::vector<std::thread> loops;
  std::atomic<int> loops_alive{0};

  // Inline reading (JS thread only, except inline_seen_ms).
  uv_poll_t *inline_poll = nullptr;
  Buf *inline_buf = nullptr;
  napi_ref dispatch_ref = nullptr;
  napi_ref resource_ref = nullptr;
  napi_async_context async_ctx = nullptr;
  std::atomic<int64_t> inline_seen_ms{0};  // when the JS thread last looked at /dev/fuse
  std::atomic<bool> stopping{false};
  std::atomic<bool> init_seen{false};
  std::atomic<bool> init_posted{false};
  std::thread teardown;
  bool stop_started = false;  // JS thread only
  bool released = false;      // JS thread only
  bool external_gone = false; // JS thread only

  Item init_item{M_INIT}, ended_item{M_ENDED}, stopped_item{M_STOPPED};

  // session.cc
  ~Session();
  bool post(Item *it);
  Req *alloc_req();
  bool claim(Req *r);
  void maybe_free(Req *r);
  void submit(Req *r);
  void undeliverable(Req *r);
  void finish(Req *r);
  Req *settle(double id, bool *mine, Buf **buf);
  void start_threads();
  int read_request(Buf **bp);
  void start_teardown();
  void release_js(napi_env env);
  void enqueue_notify(Notify n);
  // buffer_pool.cc
  Buf *pool_get();
  void pool_put(Buf *b);
  void pool_put_js(napi_env env, Buf *b);
  napi_value buf_arraybuffer(napi_env env, Buf *b);
  void pool_close_js(napi_env env);
};

// fuse_ops.cc
fuse_lowlevel_ops make_ops(uint32_t optional);
extern thread_local Buf *tl_recv_buf;
extern thread_local bool tl_stolen;
// Set while the JS thread reads inline: submit() queues requests here instead of posting them.
extern thread_local std::vector<Req *> *tl_inline_batch;

// Session::read_request results.
constexpr int READ_DONE = 1;      // one request read and processed (or a harmless retry)
constexpr int READ_NONE = 0;      // nothing waiting
constexpr int READ_GONE = -1;     // the connection ended (unmounted, aborted, session exited)
constexpr int READ_NO_MEM = -2;   // no receive buffer

int64_t now_ms();
std::string last_fuse_log();
void install_fuse_log();

}  // namespace stria
