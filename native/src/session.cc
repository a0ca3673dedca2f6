// Request slots, the one-reply claim, and the session's threads (loop, service, notifier,
// teardown). See session.h for who runs where.
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "session.h"

namespace stria {

// Smallest valid request: struct fuse_in_header.
static constexpr size_t IN_HEADER_SIZE = 40;

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// libfuse reports mount and option errors through its log; keep the tail for error messages
// instead of letting it print to stderr.
static std::mutex log_mu;
static std::string log_text;

static void fuse_log_sink(enum fuse_log_level level, const char *fmt, va_list ap) {
  if (level == FUSE_LOG_DEBUG) return;
  char line[512];
  vsnprintf(line, sizeof line, fmt, ap);
  std::lock_guard<std::mutex> g(log_mu);
  log_text += line;
  if (log_text.size() > 2048) log_text.erase(0, log_text.size() - 2048);
}

void install_fuse_log() { fuse_set_log_func(fuse_log_sink); }

std::string last_fuse_log() {
  std::lock_guard<std::mutex> g(log_mu);
  std::string out;
  out.swap(log_text);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  for (char &c : out)
    if (c == '\n') c = ';';
  return out;
}

Session::~Session() {
  for (Req *r : slots) {
    // A write whose handler never settled still holds its buffer; without a JS reference
    // it can be freed here, otherwise the ArrayBuffer finalizer owns it.
    if (r->buf != nullptr && r->buf->ab == nullptr) {
      free(r->buf->mem);
      delete r->buf;
    }
    delete r;
  }
}

bool Session::post(Item *it) { return napi_call_threadsafe_function(tsfn, it, napi_tsfn_nonblocking) == napi_ok; }

Req *Session::alloc_req() {
  std::lock_guard<std::mutex> g(mu);
  Req *r;
  if (!free_reqs.empty()) {
    r = free_reqs.back();
    free_reqs.pop_back();
  } else {
    if (slots.size() >= max_slots) return nullptr;
    r = new Req();
    r->s = this;
    r->idx = static_cast<uint32_t>(slots.size());
    slots.push_back(r);
  }
  r->in_use = true;
  r->claimed = r->reply_sent = r->js_done = r->interrupted = r->in_tl = false;
  r->tprev = r->tnext = nullptr;
  stats.requests++;
  return r;
}

// mu held. Takes the one reply for this request; the caller must send it and call finish().
bool Session::claim(Req *r) {
  if (!r->in_use || r->claimed) return false;
  r->claimed = true;
  replying++;
  if (r->in_tl) {
    if (r->tprev) r->tprev->tnext = r->tnext;
    else tl_head = r->tnext;
    if (r->tnext) r->tnext->tprev = r->tprev;
    else tl_tail = r->tprev;
    r->tprev = r->tnext = nullptr;
    r->in_tl = false;
  }
  return true;
}

// mu held. A slot is reused only once the reply went out and JS let go of it.
void Session::maybe_free(Req *r) {
  if (!r->in_use || !r->reply_sent || !r->js_done) return;
  r->in_use = false;
  r->req = nullptr;
  r->gen = r->gen + 1 == 0 ? 1 : r->gen + 1;
  if (r->bytes.capacity() > (256u << 10)) std::vector<char>().swap(r->bytes);
  free_reqs.push_back(r);
}

void Session::finish(Req *r) {
  std::lock_guard<std::mutex> g(mu);
  r->reply_sent = true;
  maybe_free(r);
  if (--replying == 0) idle_cv.notify_all();
}

// Called by libfuse on a loop thread, with the request's own lock held: take the reply (so a
// handler that sees ctx.interrupted can no longer answer) but leave the sending to the
// service thread, as replying here could free the request under libfuse's feet.
static void on_interrupt(fuse_req_t req, void *data) {
  Req *r = static_cast<Req *>(data);
  Session *s = r->s;
  {
    std::lock_guard<std::mutex> g(s->mu);
    if (r->req != req || !s->claim(r)) return;
    r->interrupted = true;
    s->stats.interrupts++;
    __atomic_store_n(&s->intr[r->idx], r->gen, __ATOMIC_RELEASE);
    s->intr_q.push_back(r);
  }
  s->svc_cv.notify_one();
}

void Session::submit(Req *r) {
  // From here on another thread may answer (and libfuse free) the request.
  fuse_req_interrupt_func(r->req, on_interrupt, r);
  {
    std::lock_guard<std::mutex> g(mu);
    // Deadlines only grow (now + one fixed timeout), so the list stays in order, and the
    // service thread, which never sleeps longer than one timeout, needs no wake-up here:
    // waking it for every request that finds the list empty cost a thread switch per request.
    if (!r->claimed && r->timed && cfg.timeout_ms > 0) {
      r->deadline = now_ms() + cfg.timeout_ms;
      r->tprev = tl_tail;
      r->tnext = nullptr;
      if (tl_tail) tl_tail->tnext = r;
      else tl_head = r;
      tl_tail = r;
      r->in_tl = true;
    }
  }
  if (tl_inline_batch != nullptr) {
    tl_inline_batch->push_back(r);  // the JS thread delivers it as soon as libfuse returns
    return;
  }
  if (!post(&r->item)) undeliverable(r);
}

void Session::undeliverable(Req *r) {
  bool mine;
  Buf *b;
  {
    std::lock_guard<std::mutex> g(mu);
    mine = claim(r);
    r->js_done = true;
    b = r->buf;
    r->buf = nullptr;
    if (!mine) maybe_free(r);
  }
  if (b) pool_put(b);
  if (mine) {
    fuse_req_interrupt_func(r->req, nullptr, nullptr);
    fuse_reply_err(r->req, EIO);
    finish(r);
  }
}

// JS thread: JS settled request `id`. Returns the request if JS owns the reply (send it, then
// finish()), nullptr if it was answered already. *buf is the write buffer to give back.
Req *Session::settle(double id, bool *mine, Buf **buf) {
  *mine = false;
  *buf = nullptr;
  if (!(id >= 0) || id > 9007199254740991.0) return nullptr;
  uint64_t v = static_cast<uint64_t>(id);
  uint32_t idx = static_cast<uint32_t>(v & SLOT_MASK);
  uint32_t gen = static_cast<uint32_t>(v >> SLOT_BITS);
  std::lock_guard<std::mutex> g(mu);
  if (idx >= slots.size()) return nullptr;
  Req *r = slots[idx];
  if (!r->in_use || r->gen != gen || r->js_done) return nullptr;
  r->js_done = true;
  *buf = r->buf;
  r->buf = nullptr;
  *mine = claim(r);
  if (!*mine) {
    stats.late++;
    maybe_free(r);
    return nullptr;
  }
  return r;
}

// One epoll set per loop thread. /dev/fuse is registered EPOLLEXCLUSIVE, so a request wakes
// one idle loop thread, not all of them (with poll(2) every thread woke for every request
// and all but one found nothing to read); the wake fd is shared, so a stop wakes them all.
// Backstop threads (inline reading) watch only the wake fd: they look at /dev/fuse on a timer.
static int loop_epoll(Session *s, bool with_fuse_fd) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return -1;
  epoll_event ev;
  std::memset(&ev, 0, sizeof ev);
  if (with_fuse_fd) {
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.fd = s->fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
      ev.events = EPOLLIN;  // a kernel without EPOLLEXCLUSIVE: every thread wakes, as with poll
      if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
        close(ep);
        return -1;
      }
    }
  }
  ev.events = EPOLLIN;
  ev.data.fd = s->wakefd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, s->wakefd, &ev) != 0) {
    close(ep);
    return -1;
  }
  return ep;
}

// Waits until /dev/fuse may have a request (true) or the session stops (false).
static bool loop_wait(Session *s, int ep) {
  if (ep < 0) {
    pollfd p[2];
    p[0].fd = s->fd;
    p[0].events = POLLIN;
    p[1].fd = s->wakefd;
    p[1].events = POLLIN;
    p[0].revents = p[1].revents = 0;
    if (poll(p, 2, -1) < 0 && errno != EINTR) return false;
    return p[1].revents == 0;
  }
  epoll_event evs[2];
  int n = epoll_wait(ep, evs, 2, -1);
  if (n < 0) return errno == EINTR;
  for (int i = 0; i < n; i++)
    if (evs[i].data.fd == s->wakefd) return false;
  return true;
}

static bool fuse_fd_readable(Session *s) {
  pollfd p;
  p.fd = s->fd;
  p.events = POLLIN;
  p.revents = 0;
  return poll(&p, 1, 0) > 0 && p.revents != 0;
}

// Backstop of inline reading: true once a request has waited on /dev/fuse for two ticks in a
// row while the JS thread did not look at it (stuck, or busy for that long); false on stop.
static bool backstop_wait(Session *s, int ep) {
  bool was_readable = false;
  for (;;) {
    int n;
    if (ep >= 0) {
      epoll_event ev;
      n = epoll_wait(ep, &ev, 1, static_cast<int>(s->cfg.backstop_ms));
    } else {
      pollfd p;
      p.fd = s->wakefd;
      p.events = POLLIN;
      p.revents = 0;
      n = poll(&p, 1, static_cast<int>(s->cfg.backstop_ms));
    }
    if (n > 0 || (n < 0 && errno != EINTR) || s->stopping.load(std::memory_order_acquire)) return false;
    bool readable = fuse_fd_readable(s);
    if (readable && was_readable && now_ms() - s->inline_seen_ms.load() > s->cfg.backstop_ms) return true;
    was_readable = readable;
  }
}

// Reads one request into *bp (a pool buffer, taken when needed) and lets libfuse dispatch it.
// A write request keeps the buffer: *bp is then cleared.
int Session::read_request(Buf **bp) {
  if (*bp == nullptr) {
    *bp = pool_get();
    if (*bp == nullptr) return READ_NO_MEM;
  }
  Buf *b = *bp;
  ssize_t n = read(fd, b->mem, b->size);
  if (n < 0) {
    int e = errno;
    if (e == EAGAIN) return READ_NONE;
    if (e == EINTR || e == ENOENT) return READ_DONE;  // ENOENT: the request was interrupted meanwhile
    return READ_GONE;  // ENODEV: unmounted, or the connection was aborted
  }
  if (static_cast<size_t>(n) < IN_HEADER_SIZE) return READ_DONE;
  fuse_buf fb;
  std::memset(&fb, 0, sizeof fb);
  fb.size = static_cast<size_t>(n);
  fb.mem = b->mem;
  fb.fd = -1;
  tl_recv_buf = b;
  tl_stolen = false;
  fuse_session_process_buf(se, &fb);
  if (tl_stolen) *bp = nullptr;  // a write request owns it now
  tl_recv_buf = nullptr;
  if (init_seen.load() && !init_posted.exchange(true)) post(&init_item);
  return fuse_session_exited(se) ? READ_GONE : READ_DONE;
}

static void loop_main(Session *s) {
  Buf *b = nullptr;
  const bool backstop = s->cfg.inline_read;
  int ep = loop_epoll(s, !backstop);
  while (!s->stopping.load(std::memory_order_acquire)) {
    int rc = s->read_request(&b);
    if (rc == READ_DONE) continue;
    if (rc == READ_NO_MEM) {  // out of memory: try again shortly
      poll(nullptr, 0, 10);
      continue;
    }
    if (rc == READ_GONE) break;
    if (!(backstop ? backstop_wait(s, ep) : loop_wait(s, ep))) break;
  }
  if (ep >= 0) close(ep);
  if (b) s->pool_put(b);
  uint64_t one = 1;
  ssize_t ignored = write(s->wakefd, &one, sizeof one);  // the other loop threads end too
  (void)ignored;
  if (s->loops_alive.fetch_sub(1) == 1 && !s->stopping.load()) s->post(&s->ended_item);
}

// Sends EINTR for interrupted requests (claimed in on_interrupt) and ETIMEDOUT for expired
// ones. It stops only when asked and nothing claimed is left to send.
static void svc_main(Session *s) {
  std::unique_lock<std::mutex> lk(s->mu);
  std::vector<std::pair<Req *, int>> todo;
  for (;;) {
    todo.clear();
    while (!s->intr_q.empty()) {
      todo.emplace_back(s->intr_q.front(), EINTR);
      s->intr_q.pop_front();
    }
    int64_t t = now_ms();
    while (s->tl_head != nullptr && s->tl_head->deadline <= t) {
      Req *r = s->tl_head;
      s->claim(r);
      s->stats.timeouts++;
      todo.emplace_back(r, ETIMEDOUT);
    }
    if (todo.empty()) {
      if (s->svc_stop) break;
      // Empty list: a request queued while we sleep expires at least one timeout after we
      // started sleeping, so sleeping one timeout never misses its deadline.
      if (s->tl_head != nullptr) s->svc_cv.wait_for(lk, std::chrono::milliseconds(s->tl_head->deadline - t));
      else if (s->cfg.timeout_ms > 0) s->svc_cv.wait_for(lk, std::chrono::milliseconds(s->cfg.timeout_ms));
      else s->svc_cv.wait(lk);
      continue;
    }
    lk.unlock();
    for (auto &[r, e] : todo) {
      fuse_req_interrupt_func(r->req, nullptr, nullptr);
      fuse_reply_err(r->req, e);
    }
    lk.lock();
    for (auto &[r, e] : todo) {
      r->reply_sent = true;
      s->maybe_free(r);
      if (--s->replying == 0) s->idle_cv.notify_all();
    }
  }
}

static constexpr int NOTIFY_LANE_ATTR = 0;
static constexpr int NOTIFY_LANE_OTHER = 1;
static constexpr int NOTIFY_OTHER_THREADS = 4;

static int notify_lane(const Notify &n) {
  return !n.entry && n.off < 0 ? NOTIFY_LANE_ATTR : NOTIFY_LANE_OTHER;
}

static void notifier_main(Session *s, int lane) {
  std::unique_lock<std::mutex> lk(s->nmu);
  for (;;) {
    s->ncv[lane].wait(lk, [s, lane] { return s->nstop || !s->nq[lane].empty(); });
    if (s->nq[lane].empty()) break;
    Notify n = std::move(s->nq[lane].front());
    s->nq[lane].pop_front();
    lk.unlock();
    int rc = n.entry ? fuse_lowlevel_notify_inval_entry(s->se, n.ino, n.name.c_str(), n.name.size())
                     : fuse_lowlevel_notify_inval_inode(s->se, n.ino, n.off, n.len);
    auto *m = new NotifyMsg();
    m->token = n.token;
    m->rc = rc;
    if (!s->post(&m->item)) delete m;
    lk.lock();
  }
}

void Session::enqueue_notify(Notify n) {
  int lane = notify_lane(n);
  {
    std::lock_guard<std::mutex> g(nmu);
    nq[lane].push_back(std::move(n));
  }
  ncv[lane].notify_one();
}

// Our threads block all signals (they inherit the mask), so the process's signals go to
// Node's threads and never interrupt a read or poll here.
struct SignalsBlocked {
  sigset_t old;
  SignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
  }
  ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &old, nullptr); }
};

void Session::start_threads() {
  SignalsBlocked blocked;
  svc = std::thread(svc_main, this);
  notifiers.emplace_back(notifier_main, this, NOTIFY_LANE_ATTR);
  for (int i = 0; i < NOTIFY_OTHER_THREADS; i++) notifiers.emplace_back(notifier_main, this, NOTIFY_LANE_OTHER);
  loops_alive = cfg.threads;
  for (int i = 0; i < cfg.threads; i++) loops.emplace_back(loop_main, this);
}

static void teardown_main(Session *s) {
  // Notifications first, while the loops still serve what the kernel may need to finish one.
  std::deque<Notify> dropped;
  {
    std::lock_guard<std::mutex> g(s->nmu);
    s->nstop = true;
    for (auto &q : s->nq) {
      for (Notify &n : q) dropped.push_back(std::move(n));
      q.clear();
    }
  }
  for (auto &cv : s->ncv) cv.notify_all();
  for (Notify &n : dropped) {
    auto *m = new NotifyMsg();
    m->token = n.token;
    m->rc = -ENOTCONN;
    if (!s->post(&m->item)) delete m;
  }
  for (auto &t : s->notifiers) if (t.joinable()) t.join();

  s->stopping.store(true, std::memory_order_release);
  uint64_t one = 1;
  ssize_t ignored = write(s->wakefd, &one, sizeof one);
  (void)ignored;
  for (std::thread &t : s->loops) t.join();

  // Answer whatever is still open; the kernel side may be gone already (errors are moot, and
  // an exited session keeps libfuse from printing them).
  fuse_session_exit(s->se);
  std::vector<Req *> open;
  {
    std::lock_guard<std::mutex> g(s->mu);
    for (Req *r : s->slots)
      if (s->claim(r)) open.push_back(r);
  }
  for (Req *r : open) {
    fuse_req_interrupt_func(r->req, nullptr, nullptr);
    fuse_reply_err(r->req, EIO);
    s->finish(r);
  }
  {
    std::unique_lock<std::mutex> lk(s->mu);
    s->svc_stop = true;
    s->svc_cv.notify_all();
    s->idle_cv.wait(lk, [s] { return s->replying == 0; });
  }
  if (s->svc.joinable()) s->svc.join();

  // Closing /dev/fuse ends the connection, also for a lazily detached mount still in use.
  fuse_session_destroy(s->se);
  s->se = nullptr;
  close(s->wakefd);
  s->wakefd = -1;
  s->post(&s->stopped_item);
}

void Session::start_teardown() {
  SignalsBlocked blocked;
  teardown = std::thread(teardown_main, this);
}

void Session::release_js(napi_env env) {
  if (released) return;
  released = true;
  if (teardown.joinable()) teardown.join();
  if (se != nullptr) {  // never mounted
    fuse_session_destroy(se);
    se = nullptr;
  }
  pool_close_js(env);
  if (tsfn != nullptr) {
    napi_release_threadsafe_function(tsfn, napi_tsfn_release);
    tsfn = nullptr;
  }
  if (scratch != nullptr) {
    napi_delete_reference(env, scratch);
    scratch = nullptr;
  }
  if (async_ctx != nullptr) {
    napi_async_destroy(env, async_ctx);
    async_ctx = nullptr;
  }
  for (napi_ref *ref : {&dispatch_ref, &resource_ref}) {
    if (*ref != nullptr) {
      napi_delete_reference(env, *ref);
      *ref = nullptr;
    }
  }
}

}  // namespace stria
