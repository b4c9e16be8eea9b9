/* fuzz_chan — a fuzz target for channels and select (issue 3).
 *
 * LLVMFuzzerTestOneInput(data, size) reads the bytes as a small program over
 * 1-4 channels (capacities 0..16, element sizes 0 (signal), 4, 8 and 24
 * bytes) run by 1-4 tasks, executes it on a runtime started once
 * (csp_init, 2 workers; env FUZZ_CHAN_WORKERS) and checks, with abort() on
 * the first violation (the input is dumped in hex to stderr):
 *
 *   for ANY interleaving (every program)
 *   - every value received is one some task offered on that same channel
 *     (values carry channel, sender, sequence number and a checksum over the
 *     whole element), is received at most once, and never after its send
 *     failed; the sender's write of the value's bookkeeping happens before
 *     the receive (plain memory: TSan checks the channel's happens-before);
 *   - per (receiver, sender, channel) values arrive in the sender's order;
 *   - after all tasks finished and every channel was closed and drained,
 *     every value whose send reported success was received exactly once
 *     (receives that discard, out == NULL, are counted per channel), and for
 *     signal channels successful receives == successful sends;
 *   - close semantics, per task in program order: once a task saw a channel
 *     closed (its close, or ECLOSED from any op) every send/close returns
 *     CSP_ECLOSED and no receive returns EAGAIN/ETIMEDOUT; once it saw a
 *     receive return CSP_ECLOSED every receive does, zero-filling out; each
 *     channel is closed successfully exactly once (program + final close);
 *   - result codes: EAGAIN only for try/poll forms, ETIMEDOUT only with a
 *     real deadline and never before it (csp_now() >= deadline), blocking
 *     forms only 0/ECLOSED; out buffers untouched unless a value or a close
 *     was received; bytes past elem_size never written; send buffers never
 *     written; csp_chan_len <= cap, cap/elem_size as made;
 *   - select returns a valid index of a non-NULL case whose status is 0 or
 *     ECLOSED; cases not chosen keep their buffers; bad arguments (NULL
 *     channel, NULL elem, bad dir, NULL cases) return CSP_EINVAL;
 *   - contexts: every task has its own csp_ctx_with_cancel(root); the _ctx
 *     forms (send_ctx, recv_ctx, select_ctx) return CSP_ECANCELED only when
 *     that context is cancelled (csp_ctx_err), never for a channel op on a
 *     channel known closed (the op is tried first), and a cancelled send
 *     delivered nothing; when csp_ctx_cancel returns, the context it was
 *     given has err and cause CSP_ECANCELED and a closed done channel;
 *     cancellation is permanent; after the run every task's context is
 *     cancelled by the root's cancel;
 *   - no hang: blocking ops without a deadline are released by the harness,
 *     which closes every channel and cancels the root after a grace period
 *     (the input picks 50 us .. 5 ms) if the tasks have not finished; then
 *     everything must finish within HANG_NS (5 s, below libFuzzer's
 *     -timeout=10), else it is reported as a hang, with the op each task is in.
 *
 *   for single-task programs (a sequential model of Go's semantics)
 *   - every result, every received value (FIFO) and len/closed agree
 *     exactly with the model, including which cases of a select were ready
 *     (the chosen one must be; csp_select_biased must choose the first
 *     ready), and the _ctx forms (an op that can complete does, even if the
 *     context is cancelled; select_ctx may also pick the cancelled context;
 *     cancelling the root has cancelled the task's context when it returns
 *     (only checkable without concurrent cancels: in Go too, a second cancel
 *     may return while the first still propagates); cancelling the task's
 *     context leaves the root alone). Blocking ops the model says would
 *     block forever get a 1 us deadline instead (and must then time out);
 *     _ctx channel ops that would are skipped.
 *
 * Input format (missing bytes read as 0):
 *   h0: bits 0-1 tasks-1; bit 2 task 0 runs on the plain calling thread (its
 *       deadline-less ops get a 1 ms deadline; its send_ctx/recv_ctx are
 *       one-case csp_select_ctx_until calls); bit 3 tasks are
 *       CSP_TASK_PINNED (all on worker 0: one-worker interleavings);
 *       bits 4-5 grace (50 us, 300 us, 1 ms, 5 ms)
 *   h1: bits 0-1 channels-1; then one byte per channel: bits 0-2 capacity
 *       {0,0,1,1,2,3,4,16}, bits 3-4 element size {0,4,8,24}
 *   ops, two bytes each (at most 256): b0 bits 0-4 op kind (weighted table
 *       below; a close only when extra is 6 or 7), bits 5-7 task (mod
 *       tasks); b1 bits 0-1 channel (mod channels), bits 2-4 deadline
 *       {poll 0, 1 (past), +1 us, +20 us, +200 us, +1 ms, forever,
 *       forever}, bits 5-7 extra (discard /
 *       NULL elem / select case count and bias / misuse variant; a cancel
 *       only when extra is 6 or 7, of the root if the deadline bits are odd);
 *       a select then reads one byte per case: bits 0-1 channel, bit 2 send,
 *       bits 3-4 both set: NULL channel, bit 5 NULL buffer.
 *
 * Built two ways (tests/fuzz/CMakeLists.txt):
 *   fuzz_chan         clang -fsanitize=fuzzer,address (CSP_FUZZ=ON): libFuzzer
 *   fuzz_chan_replay  any compiler: the main() at the end runs N pseudo-random
 *                     inputs from a seed, or the files given (reproducers),
 *                     -r times each, -p 1 printing the decoded programs;
 *                     ctest runs it (fuzz_chan_replay, fuzz_chan_corpus).
 *
 * Invariants of this file: G (the current input) is written by the harness
 * thread only while no task of the input runs (csp_go and the done channel
 * order it); per-value bookkeeping offered[][] and ok[][] is written only by
 * the value's sender; received[][] is the only per-value state written by
 * receivers (atomic). Task-local state (tctx_t) belongs to one task.
 */
#define _GNU_SOURCE
#include <csp.h>

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_TASKS = 4,
    MAX_CHANS = 4,
    MAX_OPS = 256,          /* per input, all tasks */
    SMALL_CASES = 4,        /* OP_SELECT: 1..4 cases */
    BIG_CASES = 20,         /* OP_SELECT_BIG: 17..20 (past the library's on-stack 16) */
    MAX_SEQ = 1024,         /* values per sender (10 bits of the value id) */
    HARNESS = MAX_TASKS,    /* tctx index of the harness's final drain */
    BUFSZ = 32,             /* every element buffer; bytes past elem_size must stay 0xAA */
};

enum { OP_SEND, OP_RECV, OP_TRY_SEND, OP_TRY_RECV, OP_CLOSE, OP_SELECT, OP_SELECT_BIG, OP_LEN,
       OP_YIELD, OP_MISUSE, OP_SEND_CTX, OP_RECV_CTX, OP_SELECT_CTX, OP_CANCEL, OP__N };

/* b0 & 31 -> op kind: the weights of the op mix. */
static const uint8_t k_kind[32] = {
    OP_SEND, OP_SEND, OP_SEND, OP_SEND, OP_SEND,
    OP_RECV, OP_RECV, OP_RECV, OP_RECV, OP_RECV,
    OP_TRY_SEND, OP_TRY_SEND,
    OP_TRY_RECV, OP_TRY_RECV,
    OP_CLOSE,
    OP_SELECT, OP_SELECT, OP_SELECT, OP_SELECT, OP_SELECT,
    OP_SELECT_BIG,
    OP_LEN, OP_LEN,
    OP_YIELD,
    OP_MISUSE, OP_MISUSE,
    OP_SEND_CTX, OP_SEND_CTX,
    OP_RECV_CTX, OP_RECV_CTX,
    OP_SELECT_CTX,
    OP_CANCEL,
};

static const size_t k_cap[8] = { 0, 0, 1, 1, 2, 3, 4, 16 };
static const size_t k_esz[4] = { 0, 4, 8, 24 };
/* After every channel is closed and the root cancelled, the tasks have this
 * long to finish (their remaining ops take at most ~1 ms each). */
#define HANG_NS (5 * CSP_SECOND)

static const csp_duration_t k_grace[4] = { 50 * CSP_MICROSECOND, 300 * CSP_MICROSECOND,
                                           1 * CSP_MILLISECOND, 5 * CSP_MILLISECOND };

/* Deadline kinds (b1 bits 2-4), plus DK_TRY for the try_* forms. */
enum { DK_POLL, DK_PAST, DK_1US, DK_20US, DK_200US, DK_1MS, DK_FOREVER, DK_TRY };
static const uint8_t k_dk[8] = { DK_POLL, DK_PAST, DK_1US, DK_20US, DK_200US, DK_1MS,
                                 DK_FOREVER, DK_FOREVER };

typedef struct {
    uint8_t kind, chan, dk, extra, ncases;
    uint8_t cases[BIG_CASES];
} op_t;

/* Task-local state: one per task (and one for the harness's drain). */
typedef struct {
    int idx;                     /* 0..MAX_TASKS-1, or HARNESS */
    bool plain;                  /* runs on the plain harness thread */
    int nops;
    int seq;                     /* next value sequence number of this sender */
    bool closed_seen[MAX_CHANS]; /* this task knows the channel is closed */
    bool drained_seen[MAX_CHANS];/* ... and closed and drained (a recv gave ECLOSED) */
    bool ctx_done_seen;          /* this task knows its context is cancelled */
    int last_seq[MAX_TASKS][MAX_CHANS]; /* last seq received per sender/channel (FIFO) */
} tctx_t;

/* The sequential model of one channel (single-task programs). */
typedef struct {
    int q[17];                   /* value ids (-1 for signal channels), ring */
    int head, count;
    bool closed;
} model_t;

static struct {
    /* config */
    int ntasks, nchan;
    bool plain, pinned, model;
    csp_duration_t grace;
    size_t cap[MAX_CHANS], esz[MAX_CHANS];
    csp_chan_t *ch[MAX_CHANS];
    csp_ctx_t *root;             /* csp_ctx_with_cancel(background) */
    csp_ctx_t *ctx[MAX_TASKS];   /* each task's csp_ctx_with_cancel(root) */
    op_t ops[MAX_TASKS][MAX_OPS];
    tctx_t t[MAX_TASKS + 1];
    model_t m[MAX_CHANS];
    bool m_root_cancelled, m_own_cancelled; /* the model of the single task's contexts */
    /* per value: written by its sender only */
    uint8_t offered[MAX_TASKS][MAX_SEQ]; /* channel + 1, before the value is offered */
    uint8_t ok[MAX_TASKS][MAX_SEQ];      /* 1: the send reported success */
    /* the input, for reports */
    const uint8_t *data;
    size_t size;
} G;

/* Written by receivers (relaxed: only counts; the final check runs after
 * every task has finished, ordered by the done channel). */
static _Atomic uint8_t g_received[MAX_TASKS][MAX_SEQ];
static atomic_long g_sig_sent[MAX_CHANS], g_sig_recv[MAX_CHANS], g_discards[MAX_CHANS];
static atomic_int g_close_ok[MAX_CHANS];
static csp_chan_t *g_done;       /* elem 0, cap MAX_TASKS: "task finished" */
/* The op each task is in (index into its program, -1: finished, -2: not
 * started), for hang reports (relaxed: informational). */
static atomic_int g_cur_op[MAX_TASKS];

static const char *const k_op_name[OP__N] = {
    "send", "recv", "try_send", "try_recv", "close", "select", "select(big)", "len", "yield",
    "misuse", "send_ctx", "recv_ctx", "select_ctx", "cancel",
};

/* Outcome counters (relaxed, informational; the replay driver checks that
 * the inputs exercised every kind of outcome). */
enum { ST_SENT, ST_RECEIVED, ST_EAGAIN, ST_TIMEDOUT, ST_CLOSED, ST_CANCELED, ST_SELECTED,
       ST_SEL_NONE, ST_MISUSE, ST_INPUTS, ST_MODEL, ST_HARNESS_CLOSE, ST__N };
static const char *const k_st_name[ST__N] __attribute__((unused)) = {
    "sent", "received", "eagain", "timedout", "eclosed", "ecanceled", "select-chosen",
    "select-none", "misuse", "inputs", "model-inputs", "grace-closes",
};
static atomic_long g_stats[ST__N];
#define STAT(i) atomic_fetch_add_explicit(&g_stats[i], 1, memory_order_relaxed)

/* ---- reporting ------------------------------------------------------------------ */

static const char *g_input_name = "";   /* the replay driver's name for the input */

static void __attribute__((noreturn, format(printf, 2, 3))) fail_at(int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nfuzz_chan: VIOLATION (fuzz_chan.c:%d) %s: %s\n", line, g_input_name, msg);
    fprintf(stderr, "fuzz_chan: tasks=%d plain=%d pinned=%d model=%d grace=%lld us chans:",
            G.ntasks, G.plain, G.pinned, G.model, (long long)(G.grace / 1000));
    for (int i = 0; i < G.nchan; i++)
        fprintf(stderr, " [cap %zu elem %zu]", G.cap[i], G.esz[i]);
    fprintf(stderr, "\nfuzz_chan: input (%zu bytes):", G.size);
    for (size_t i = 0; i < G.size; i++)
        fprintf(stderr, "%s%02x", i % 32 ? "" : "\n  ", G.data[i]);
    fprintf(stderr, "\n");
    fflush(stderr);
    abort();
}
#define FAIL(...) fail_at(__LINE__, __VA_ARGS__)
#define CHECK(c, ...)                                                                          \
    do {                                                                                       \
        if (!(c))                                                                              \
            FAIL(__VA_ARGS__);                                                                 \
    } while (0)

/* ---- values ---------------------------------------------------------------------- */

static uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* id (14 bits: channel 2, sender 2, seq 10) -> an element of esz bytes whose
 * every 4-byte word is checked; never all zero (the ECLOSED fill). */
static void fill(unsigned char *buf, size_t esz, int id)
{
    memset(buf, 0xAA, BUFSZ);
    if (id < 0) { /* signal channel: an arbitrary pattern that must stay untouched */
        memset(buf, 0x5A, BUFSZ);
        return;
    }
    uint32_t w0 = (uint32_t)id | (((mix32((uint32_t)id) & 0xFFFFu) | 1u) << 16);
    for (size_t i = 0; i * 4 < esz; i++) {
        uint32_t w = i == 0 ? w0 : mix32(w0 + (uint32_t)i * 0x9E3779B9u);
        memcpy(buf + i * 4, &w, 4);
    }
}

/* The id in buf's first esz bytes, or -1 if they are not exactly what
 * fill() makes. */
static int decode(const unsigned char *buf, size_t esz)
{
    uint32_t w0;
    memcpy(&w0, buf, 4);
    uint32_t id = w0 & 0xFFFFu;
    if (id >= (1u << 14))
        return -1;
    unsigned char want[BUFSZ];
    fill(want, esz, (int)id);
    return memcmp(want, buf, esz) == 0 ? (int)id : -1;
}

static int make_id(int chan, int task, int seq) { return chan << 12 | task << 10 | seq; }

static bool all_bytes(const unsigned char *p, int byte, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)byte)
            return false;
    return true;
}

/* A fresh value for channel ci from sender t (recorded as offered). */
static int new_value(tctx_t *t, int ci)
{
    if (G.esz[ci] == 0)
        return -1;
    CHECK(t->seq < MAX_SEQ, "sender %d ran out of sequence numbers", t->idx);
    int seq = t->seq++;
    G.offered[t->idx][seq] = (uint8_t)(ci + 1);
    return make_id(ci, t->idx, seq);
}

/* ---- the model ------------------------------------------------------------------- */

static void model_push(int ci, int id)
{
    model_t *m = &G.m[ci];
    CHECK(m->count < (int)G.cap[ci], "model: push on a full channel %d", ci);
    m->q[(m->head + m->count) % 17] = id;
    m->count++;
}

static int model_pop(int ci)
{
    model_t *m = &G.m[ci];
    CHECK(m->count > 0, "model: pop from an empty channel %d", ci);
    int id = m->q[m->head];
    m->head = (m->head + 1) % 17;
    m->count--;
    return id;
}

static bool model_ready(int ci, int dir)
{
    const model_t *m = &G.m[ci];
    if (dir == CSP_RECV)
        return m->count > 0 || m->closed;
    return m->closed || m->count < (int)G.cap[ci];
}

static bool model_cancelled(void) { return G.m_root_cancelled || G.m_own_cancelled; }

/* An op on the task's context returned CSP_ECANCELED. */
static void saw_cancel(tctx_t *t, const char *what)
{
    int e = csp_ctx_err(G.ctx[t->idx]);
    CHECK(e == CSP_ECANCELED, "%s gave CSP_ECANCELED, but csp_ctx_err of its context is %d",
          what, e);
    if (G.model)
        CHECK(model_cancelled(), "model: %s gave CSP_ECANCELED, its context is not cancelled",
              what);
    t->ctx_done_seen = true;
    STAT(ST_CANCELED);
}

/* ---- deadlines ------------------------------------------------------------------- */

enum { F_TRY, F_UNTIL, F_FOREVER };
typedef struct {
    int form;
    csp_time_t dl;   /* F_UNTIL: the deadline (0: poll) */
} when_t;

/* would_block: the model's prediction (single-task programs only). */
static when_t when_of(const tctx_t *t, int dk, bool would_block)
{
    switch (dk) {
    case DK_TRY: return (when_t){ F_TRY, 0 };
    case DK_POLL: return (when_t){ F_UNTIL, 0 };
    case DK_PAST: return (when_t){ F_UNTIL, 1 };
    case DK_1US: return (when_t){ F_UNTIL, csp_now() + CSP_MICROSECOND };
    case DK_20US: return (when_t){ F_UNTIL, csp_now() + 20 * CSP_MICROSECOND };
    case DK_200US: return (when_t){ F_UNTIL, csp_now() + 200 * CSP_MICROSECOND };
    case DK_1MS: return (when_t){ F_UNTIL, csp_now() + CSP_MILLISECOND };
    default:
        if (G.model && would_block)
            return (when_t){ F_UNTIL, csp_now() + CSP_MICROSECOND };
        if (t->plain && !G.model)
            return (when_t){ F_UNTIL, csp_now() + CSP_MILLISECOND };
        return (when_t){ F_FOREVER, CSP_FOREVER };
    }
}

static bool is_poll(const when_t *w) { return w->form == F_TRY || w->dl == 0; }

/* The model's result for an op that would block. */
static int blocked_rc(const when_t *w) { return is_poll(w) ? CSP_EAGAIN : CSP_ETIMEDOUT; }

/* Checks a result code against the form of the call (ok_rc: 0/ECLOSED, or
 * select indexes, are the caller's business: they pass ok = true). */
static void check_rc_form(int rc, bool ok, const when_t *w, csp_time_t after, const char *what)
{
    if (ok)
        return;
    if (rc == CSP_EAGAIN) {
        CHECK(is_poll(w), "%s: CSP_EAGAIN from a form with deadline %lld", what,
              (long long)w->dl);
        STAT(ST_EAGAIN);
    } else if (rc == CSP_ETIMEDOUT) {
        CHECK(!is_poll(w) && w->form != F_FOREVER, "%s: CSP_ETIMEDOUT from a %s form", what,
              w->form == F_FOREVER ? "blocking" : "poll");
        CHECK(after >= w->dl, "%s: timed out %lld ns before its deadline", what,
              (long long)(w->dl - after));
        STAT(ST_TIMEDOUT);
    } else {
        FAIL("%s: unexpected result %d (%s)", what, rc, csp_strerror(rc));
    }
}

/* ---- results shared by ops -------------------------------------------------------- */

/* A receive on channel ci succeeded; buf holds the element (NULL: discarded). */
static void got_value(tctx_t *t, int ci, const unsigned char *buf)
{
    size_t es = G.esz[ci];
    STAT(ST_RECEIVED);
    int mid = G.model ? model_pop(ci) : 0;
    if (es == 0) {
        atomic_fetch_add_explicit(&g_sig_recv[ci], 1, memory_order_relaxed);
        if (buf)
            CHECK(all_bytes(buf, 0xAA, BUFSZ), "recv on signal channel %d wrote to out", ci);
        return;
    }
    if (!buf) {
        atomic_fetch_add_explicit(&g_discards[ci], 1, memory_order_relaxed);
        return;
    }
    int id = decode(buf, es);
    CHECK(id >= 0, "chan %d: received a value that no sender made (torn or garbage element; "
                   "first word %02x%02x%02x%02x)", ci, buf[3], buf[2], buf[1], buf[0]);
    CHECK(all_bytes(buf + es, 0xAA, BUFSZ - es), "chan %d: recv wrote past elem_size", ci);
    int vc = id >> 12, vt = (id >> 10) & 3, seq = id & 1023;
    CHECK(vc == ci, "value %#x sent on channel %d was received from channel %d", id, vc, ci);
    CHECK(vt < G.ntasks, "value %#x from a sender that does not exist", id);
    CHECK(G.offered[vt][seq] == ci + 1,
          "value %#x (sender %d seq %d) received on chan %d but not offered there (offered=%d): "
          "a value from nowhere, or its send does not happen before the receive",
          id, vt, seq, ci, G.offered[vt][seq] - 1);
    int before = atomic_fetch_add_explicit(&g_received[vt][seq], 1, memory_order_relaxed);
    CHECK(before == 0, "value %#x (sender %d seq %d, chan %d) received twice", id, vt, seq, ci);
    CHECK(seq > t->last_seq[vt][ci],
          "FIFO: receiver %d got seq %d from sender %d on chan %d after seq %d", t->idx, seq, vt,
          ci, t->last_seq[vt][ci]);
    t->last_seq[vt][ci] = seq;
    if (G.model)
        CHECK(mid == id, "model: chan %d received %#x, the model's head is %#x", ci, id, mid);
}

/* The result of a receive-like op (recv, try_recv, a select recv case).
 * buf: the out buffer given (NULL if out was NULL). */
static void recv_result(tctx_t *t, int ci, int rc, const unsigned char *buf)
{
    size_t es = G.esz[ci];
    if (rc == 0) {
        CHECK(!t->drained_seen[ci], "chan %d: recv got a value after a recv returned ECLOSED",
              ci);
        got_value(t, ci, buf);
    } else if (rc == CSP_ECLOSED) {
        STAT(ST_CLOSED);
        if (buf) {
            CHECK(all_bytes(buf, 0, es), "chan %d: recv ECLOSED did not zero-fill out", ci);
            CHECK(all_bytes(buf + es, 0xAA, BUFSZ - es), "chan %d: recv wrote past elem_size", ci);
        }
        t->closed_seen[ci] = t->drained_seen[ci] = true;
    } else {
        CHECK(!t->closed_seen[ci], "chan %d: recv returned %s on a channel known closed", ci,
              csp_strerror(rc));
        if (buf)
            CHECK(all_bytes(buf, 0xAA, BUFSZ), "chan %d: recv %s touched out", ci,
                  csp_strerror(rc));
    }
}

/* The result of a send-like op of value id (-1: signal channel). */
static void send_result(tctx_t *t, int ci, int rc, int id)
{
    if (rc == 0) {
        CHECK(!t->closed_seen[ci], "chan %d: a send succeeded on a channel known closed", ci);
        STAT(ST_SENT);
        if (id >= 0)
            G.ok[t->idx][id & 1023] = 1;
        else
            atomic_fetch_add_explicit(&g_sig_sent[ci], 1, memory_order_relaxed);
        if (G.model)
            model_push(ci, id);
    } else if (rc == CSP_ECLOSED) {
        STAT(ST_CLOSED);
        t->closed_seen[ci] = true;
    } else {
        CHECK(!t->closed_seen[ci], "chan %d: send returned %s on a channel known closed", ci,
              csp_strerror(rc));
    }
}

/* ---- ops -------------------------------------------------------------------------- */

static void op_send(tctx_t *t, const op_t *op, bool try_form)
{
    int ci = op->chan;
    csp_chan_t *c = G.ch[ci];
    size_t es = G.esz[ci];
    int id = new_value(t, ci);
    unsigned char buf[BUFSZ], orig[BUFSZ];
    fill(buf, es, id);
    memcpy(orig, buf, BUFSZ);
    const void *elem = (es == 0 && (op->extra & 1)) ? NULL : buf;
    bool block = false;
    int mexp = 0;
    if (G.model) {
        if (G.m[ci].closed)
            mexp = CSP_ECLOSED;
        else if (G.m[ci].count >= (int)G.cap[ci])
            block = true;
    }
    when_t w = when_of(t, try_form ? DK_TRY : op->dk, block);
    int rc = w.form == F_TRY       ? csp_chan_try_send(c, elem)
             : w.form == F_FOREVER ? csp_chan_send(c, elem)
                                   : csp_chan_send_until(c, elem, w.dl);
    csp_time_t after = csp_now();
    check_rc_form(rc, rc == 0 || rc == CSP_ECLOSED, &w, after, "send");
    CHECK(memcmp(buf, orig, BUFSZ) == 0, "chan %d: send wrote to its elem", ci);
    CHECK(!t->closed_seen[ci] || rc == CSP_ECLOSED, "chan %d: send on a closed channel gave %d",
          ci, rc);
    if (G.model) {
        int want = block ? blocked_rc(&w) : mexp;
        CHECK(rc == want, "model: send on chan %d (cap %zu, len %d, closed %d) gave %d, want %d",
              ci, G.cap[ci], G.m[ci].count, G.m[ci].closed, rc, want);
    }
    send_result(t, ci, rc, rc == 0 ? id : -2);
}

static void op_recv(tctx_t *t, const op_t *op, bool try_form)
{
    int ci = op->chan;
    csp_chan_t *c = G.ch[ci];
    unsigned char buf[BUFSZ];
    memset(buf, 0xAA, BUFSZ);
    void *out = (op->extra & 1) ? NULL : buf;
    bool block = false;
    int mexp = 0;
    if (G.model) {
        if (G.m[ci].count > 0)
            mexp = 0;
        else if (G.m[ci].closed)
            mexp = CSP_ECLOSED;
        else
            block = true;
    }
    when_t w = when_of(t, try_form ? DK_TRY : op->dk, block);
    int rc = w.form == F_TRY       ? csp_chan_try_recv(c, out)
             : w.form == F_FOREVER ? csp_chan_recv(c, out)
                                   : csp_chan_recv_until(c, out, w.dl);
    csp_time_t after = csp_now();
    check_rc_form(rc, rc == 0 || rc == CSP_ECLOSED, &w, after, "recv");
    CHECK(!t->drained_seen[ci] || rc == CSP_ECLOSED,
          "chan %d: recv after a recv returned ECLOSED gave %d", ci, rc);
    if (G.model) {
        int want = block ? blocked_rc(&w) : mexp;
        CHECK(rc == want, "model: recv on chan %d (cap %zu, len %d, closed %d) gave %d, want %d",
              ci, G.cap[ci], G.m[ci].count, G.m[ci].closed, rc, want);
    }
    recv_result(t, ci, rc, out ? buf : NULL);
    if (!out)
        CHECK(all_bytes(buf, 0xAA, BUFSZ), "recv with out NULL wrote somewhere");
}

static void op_close(tctx_t *t, const op_t *op)
{
    int ci = op->chan;
    int rc = csp_chan_close(G.ch[ci]);
    CHECK(rc == 0 || rc == CSP_ECLOSED, "close gave %d", rc);
    CHECK(!t->closed_seen[ci] || rc == CSP_ECLOSED, "chan %d: a second close succeeded", ci);
    if (G.model) {
        CHECK(rc == (G.m[ci].closed ? CSP_ECLOSED : 0), "model: close of chan %d gave %d", ci, rc);
        G.m[ci].closed = true;
    }
    if (rc == 0)
        atomic_fetch_add_explicit(&g_close_ok[ci], 1, memory_order_relaxed);
    else
        STAT(ST_CLOSED);
    t->closed_seen[ci] = true;
}

static void op_len(tctx_t *t, int ci)
{
    csp_chan_t *c = G.ch[ci];
    size_t len = csp_chan_len(c);
    int closed = csp_chan_closed(c);
    CHECK(csp_chan_cap(c) == G.cap[ci], "chan %d: cap %zu, made with %zu", ci, csp_chan_cap(c),
          G.cap[ci]);
    CHECK(csp_chan_elem_size(c) == G.esz[ci], "chan %d: elem_size %zu, made with %zu", ci,
          csp_chan_elem_size(c), G.esz[ci]);
    CHECK(len <= G.cap[ci], "chan %d: len %zu > cap %zu", ci, len, G.cap[ci]);
    CHECK(closed == 0 || closed == 1, "csp_chan_closed gave %d", closed);
    CHECK(!t->closed_seen[ci] || closed, "chan %d: known closed, csp_chan_closed says 0", ci);
    if (G.model)
        CHECK(len == (size_t)G.m[ci].count && closed == G.m[ci].closed,
              "model: chan %d len %zu closed %d, model %d %d", ci, len, closed, G.m[ci].count,
              G.m[ci].closed);
}

/* csp_select / csp_select_biased, or with ctx (OP_SELECT_CTX) csp_select_ctx,
 * where the context is one more case. */
static void op_select(tctx_t *t, const op_t *op)
{
    int n = op->ncases;
    csp_ctx_t *ctx = op->kind == OP_SELECT_CTX ? G.ctx[t->idx] : NULL;
    bool biased = op->kind == OP_SELECT ? (op->extra & 4) != 0
                  : op->kind == OP_SELECT_BIG ? (op->extra & 1) != 0 : false;
    csp_case_t cs[BIG_CASES];
    unsigned char bufs[BIG_CASES][BUFSZ], orig[BIG_CASES][BUFSZ];
    int chan[BIG_CASES], id[BIG_CASES];
    bool ready[BIG_CASES];
    int first_ready = -1, nready = 0;
    bool any_live = false, live_closed = false;
    for (int i = 0; i < n; i++) {
        uint8_t b = op->cases[i];
        int ci = (b & 3) % G.nchan;
        bool nil = (b & 0x18) == 0x18, nullbuf = (b & 0x20) != 0;
        int dir = (b & 4) ? CSP_SEND : CSP_RECV;
        chan[i] = nil ? -1 : ci;
        id[i] = -1;
        if (dir == CSP_SEND) {
            if (!nil)
                id[i] = new_value(t, ci);
            fill(bufs[i], nil ? 8 : G.esz[ci], nil ? -1 : id[i]);
        } else {
            memset(bufs[i], 0xAA, BUFSZ);
        }
        memcpy(orig[i], bufs[i], BUFSZ);
        /* a send case needs its buffer unless the channel is a signal channel */
        bool drop = nullbuf && (dir == CSP_RECV || nil || G.esz[ci] == 0);
        cs[i] = (csp_case_t){ nil ? NULL : G.ch[ci], dir, drop ? NULL : bufs[i], 12345 };
        ready[i] = false;
        if (!nil) {
            any_live = true;
            live_closed |= t->closed_seen[ci];
            if (G.model && model_ready(ci, dir)) {
                ready[i] = true;
                nready++;
                if (first_ready < 0)
                    first_ready = i;
            }
        }
    }
    const char *what = ctx ? "select_ctx" : biased ? "select_biased" : "select";
    int rc;
    when_t w;
    if (ctx) {
        /* blocks until a case is ready or ctx is cancelled (the harness
         * cancels the root after the grace period) */
        w = when_of(t, DK_FOREVER, G.model && nready == 0 && !model_cancelled());
        rc = w.form == F_FOREVER ? csp_select_ctx(ctx, cs, (size_t)n)
                                 : csp_select_ctx_until(ctx, cs, (size_t)n, w.dl);
    } else {
        int dk = op->dk;
        if (!any_live && dk == DK_FOREVER && !G.model)
            dk = DK_POLL; /* all-NULL cases with no deadline block until shutdown */
        w = when_of(t, dk, G.model && nready == 0);
        rc = biased ? csp_select_biased(cs, (size_t)n, w.dl) : csp_select(cs, (size_t)n, w.dl);
    }
    csp_time_t after = csp_now();
    check_rc_form(rc, rc >= 0 || (ctx && rc == CSP_ECANCELED), &w, after, what);
    if (rc == CSP_ECANCELED) {
        STAT(ST_SEL_NONE);
        saw_cancel(t, what);
    } else if (rc < 0) {
        STAT(ST_SEL_NONE);
        CHECK(!live_closed, "select gave %s with a case on a channel known closed",
              csp_strerror(rc));
        if (G.model)
            CHECK(nready == 0 && !(ctx && model_cancelled()),
                  "model: %s gave %s with %d case(s) ready (first %d)", what, csp_strerror(rc),
                  nready, first_ready);
    } else {
        STAT(ST_SELECTED);
        CHECK(rc < n, "select returned index %d of %d cases", rc, n);
        CHECK(chan[rc] >= 0, "select chose case %d, whose channel is NULL", rc);
        int st = cs[rc].status, ci = chan[rc];
        CHECK(st == 0 || st == CSP_ECLOSED, "select: chosen case status %d", st);
        if (G.model) {
            CHECK(ready[rc], "model: %s chose case %d (%s chan %d), which was not ready", what,
                  rc, cs[rc].dir == CSP_SEND ? "send" : "recv", ci);
            if (biased)
                CHECK(rc == first_ready, "model: select_biased chose case %d, first ready is %d",
                      rc, first_ready);
            int want = cs[rc].dir == CSP_RECV ? (G.m[ci].count > 0 ? 0 : CSP_ECLOSED)
                                              : (G.m[ci].closed ? CSP_ECLOSED : 0);
            CHECK(st == want, "model: select case %d status %d, want %d", rc, st, want);
        }
        if (cs[rc].dir == CSP_RECV) {
            recv_result(t, ci, st, cs[rc].buf);
        } else {
            CHECK(memcmp(bufs[rc], orig[rc], BUFSZ) == 0, "select wrote to a send buffer");
            send_result(t, ci, st, st == 0 ? id[rc] : -2);
        }
    }
    for (int i = 0; i < n; i++)
        if (i != rc)
            CHECK(memcmp(bufs[i], orig[i], BUFSZ) == 0,
                  "select touched the buffer of case %d, not chosen (%d)", i, rc);
}

static void op_misuse(tctx_t *t, const op_t *op)
{
    int ci = op->chan;
    csp_chan_t *c = G.ch[ci];
    unsigned char buf[BUFSZ];
    memset(buf, 0xAA, BUFSZ);
    STAT(ST_MISUSE);
    (void)t;
    switch (op->extra % 6) {
    case 0: /* NULL channel */
        CHECK(csp_chan_send(NULL, buf) == CSP_EINVAL, "send(NULL)");
        CHECK(csp_chan_recv(NULL, buf) == CSP_EINVAL, "recv(NULL)");
        CHECK(csp_chan_try_send(NULL, buf) == CSP_EINVAL, "try_send(NULL)");
        CHECK(csp_chan_try_recv(NULL, buf) == CSP_EINVAL, "try_recv(NULL)");
        CHECK(csp_chan_send_until(NULL, buf, 1) == CSP_EINVAL, "send_until(NULL)");
        CHECK(csp_chan_recv_until(NULL, buf, CSP_FOREVER) == CSP_EINVAL, "recv_until(NULL)");
        CHECK(csp_chan_close(NULL) == CSP_EINVAL, "close(NULL)");
        CHECK(csp_chan_len(NULL) == 0 && csp_chan_cap(NULL) == 0 &&
              csp_chan_elem_size(NULL) == 0 && csp_chan_closed(NULL) == 0, "len/cap(NULL)");
        CHECK(csp_chan_retain(NULL) == NULL, "retain(NULL)");
        csp_chan_release(NULL);
        break;
    case 1: /* NULL elem on a channel with elements */
        if (G.esz[ci]) {
            CHECK(csp_chan_send(c, NULL) == CSP_EINVAL, "send(c, NULL)");
            CHECK(csp_chan_try_send(c, NULL) == CSP_EINVAL, "try_send(c, NULL)");
            CHECK(csp_chan_send_until(c, NULL, 0) == CSP_EINVAL, "send_until(c, NULL, 0)");
        }
        break;
    case 2: { /* select: NULL cases, bad dir */
        CHECK(csp_select(NULL, 1, 0) == CSP_EINVAL, "select(NULL, 1)");
        CHECK(csp_select_biased(NULL, 2, CSP_FOREVER) == CSP_EINVAL, "select_biased(NULL, 2)");
        csp_case_t cs[2] = { CSP_RECV_CASE(c, buf), { c, (op->dk & 1) ? 0 : 3, buf, 0 } };
        CHECK(csp_select(cs, 2, CSP_FOREVER) == CSP_EINVAL, "select with a bad dir");
        break;
    }
    case 3: /* select: a send case without a buffer on a channel with elements */
        if (G.esz[ci]) {
            csp_case_t cs[2] = { CSP_RECV_CASE(c, buf), CSP_SEND_CASE(c, NULL) };
            CHECK(csp_select(cs, 2, 0) == CSP_EINVAL, "select send case with buf NULL");
        }
        break;
    case 4: /* retain/release keep the channel */
        CHECK(csp_chan_retain(c) == c, "retain");
        csp_chan_release(c);
        break;
    default: /* empty selects: Go's select {} with default / with a timeout */
        CHECK(csp_select(NULL, 0, 0) == CSP_EAGAIN, "empty select poll");
        CHECK(csp_select(NULL, 0, 1) == CSP_ETIMEDOUT, "empty select, past deadline");
        break;
    }
    CHECK(all_bytes(buf, 0xAA, BUFSZ), "a rejected call wrote to its buffer");
}

/* csp_chan_send_ctx / csp_chan_recv_ctx on the task's context. */
static void op_chan_ctx(tctx_t *t, const op_t *op, int dir)
{
    int ci = op->chan;
    csp_chan_t *c = G.ch[ci];
    size_t es = G.esz[ci];
    csp_ctx_t *ctx = G.ctx[t->idx];
    bool ready = G.model && model_ready(ci, dir);
    if (G.model && !ready && !model_cancelled()) {
        op_len(t, ci); /* it would block forever: no deadline form */
        return;
    }
    int id = dir == CSP_SEND ? new_value(t, ci) : -1;
    unsigned char buf[BUFSZ], orig[BUFSZ];
    if (dir == CSP_SEND)
        fill(buf, es, id);
    else
        memset(buf, 0xAA, BUFSZ);
    memcpy(orig, buf, BUFSZ);
    void *p = (op->extra & 1) && (dir == CSP_RECV || es == 0) ? NULL : buf;
    int mexp = 0;
    if (G.model)
        mexp = !ready ? CSP_ECANCELED
               : dir == CSP_SEND ? (G.m[ci].closed ? CSP_ECLOSED : 0)
                                 : (G.m[ci].count > 0 ? 0 : CSP_ECLOSED);
    const char *what = dir == CSP_SEND ? "send_ctx" : "recv_ctx";
    int rc;
    when_t w = { F_FOREVER, CSP_FOREVER };
    bool via_select = t->plain && !G.model;
    if (via_select) {
        /* the plain harness thread must not block without a deadline: the
         * same operation as a one-case select_ctx_until */
        w = when_of(t, DK_FOREVER, false);
        csp_case_t k = { c, dir, p, 12345 };
        rc = csp_select_ctx_until(ctx, &k, 1, w.dl);
        CHECK(rc < 0 || rc == 0, "%s: one-case select returned %d", what, rc);
        if (rc == 0)
            rc = k.status;
    } else {
        rc = dir == CSP_SEND ? csp_chan_send_ctx(ctx, c, p) : csp_chan_recv_ctx(ctx, c, p);
    }
    csp_time_t after = csp_now();
    check_rc_form(rc, rc == 0 || rc == CSP_ECLOSED || rc == CSP_ECANCELED, &w, after, what);
    if (G.model)
        CHECK(rc == mexp, "model: %s on chan %d (cap %zu, len %d, closed %d, cancelled %d) gave "
                          "%d, want %d", what, ci, G.cap[ci], G.m[ci].count, G.m[ci].closed,
              model_cancelled(), rc, mexp);
    if (rc == CSP_ECANCELED) {
        saw_cancel(t, what);
        CHECK(memcmp(buf, orig, BUFSZ) == 0, "%s: CSP_ECANCELED but its buffer was written",
              what);
        /* the op is tried first, so a closed channel gives ECLOSED; but in a
         * select the context is one more case, chosen at random */
        CHECK(via_select || !t->closed_seen[ci], "chan %d: %s gave CSP_ECANCELED on a closed "
                                                 "channel", ci, what);
        return; /* nothing delivered: the final check sees the value unreceived */
    }
    if (dir == CSP_SEND) {
        CHECK(memcmp(buf, orig, BUFSZ) == 0, "%s wrote to its elem", what);
        CHECK(!t->closed_seen[ci] || rc == CSP_ECLOSED, "chan %d: %s on a closed channel gave %d",
              ci, what, rc);
        send_result(t, ci, rc, rc == 0 ? id : -2);
    } else {
        CHECK(!t->drained_seen[ci] || rc == CSP_ECLOSED,
              "chan %d: %s after a recv returned ECLOSED gave %d", ci, what, rc);
        recv_result(t, ci, rc, p ? buf : NULL);
    }
}

/* Cancels the task's own context, or (dk odd) the root of every task's. */
static void op_cancel(tctx_t *t, const op_t *op)
{
    bool root = op->dk & 1;
    csp_ctx_t *own = G.ctx[t->idx], *target = root ? G.root : own;
    csp_ctx_cancel(target);
    CHECK(csp_ctx_err(target) == CSP_ECANCELED, "after cancelling the %s, its err is %d",
          root ? "root" : "task's context", csp_ctx_err(target));
    CHECK(csp_ctx_cause(target) == CSP_ECANCELED, "csp_ctx_cause after cancel = %d",
          csp_ctx_cause(target));
    CHECK(csp_chan_closed(csp_ctx_done(target)) == 1,
          "the done channel of a cancelled context is not closed");
    if (G.model) {
        if (root)
            G.m_root_cancelled = true;
        else
            G.m_own_cancelled = true;
        /* The first cancel returns after every descendant is cancelled (a
         * later, concurrent one may return while the first still works, as
         * in Go: only single-task programs can check this). */
        CHECK(csp_ctx_err(own) == CSP_ECANCELED,
              "after cancelling the root, its child's err is %d", csp_ctx_err(own));
        CHECK(csp_ctx_err(G.root) == (G.m_root_cancelled ? CSP_ECANCELED : 0),
              "cancelling a child touched its parent (root err %d)", csp_ctx_err(G.root));
    }
    if (csp_ctx_err(own) == CSP_ECANCELED)
        t->ctx_done_seen = true;
}

static void run_prog(tctx_t *t)
{
    for (int k = 0; k < t->nops; k++) {
        const op_t *op = &G.ops[t->idx][k];
        atomic_store_explicit(&g_cur_op[t->idx], k, memory_order_relaxed);
        switch (op->kind) {
        case OP_SEND: op_send(t, op, false); break;
        case OP_TRY_SEND: op_send(t, op, true); break;
        case OP_RECV: op_recv(t, op, false); break;
        case OP_TRY_RECV: op_recv(t, op, true); break;
        case OP_CLOSE: op_close(t, op); break;
        case OP_SELECT:
        case OP_SELECT_BIG:
        case OP_SELECT_CTX: op_select(t, op); break;
        case OP_SEND_CTX: op_chan_ctx(t, op, CSP_SEND); break;
        case OP_RECV_CTX: op_chan_ctx(t, op, CSP_RECV); break;
        case OP_CANCEL: op_cancel(t, op); break;
        case OP_LEN: op_len(t, op->chan); break;
        case OP_YIELD:
            if (op->extra & 1)
                csp_yield();
            else
                CHECK(csp_sleep((op->extra >> 1) * 5 * CSP_MICROSECOND) == 0, "sleep");
            break;
        default: op_misuse(t, op); break;
        }
        if (t->ctx_done_seen) /* cancellation is permanent */
            CHECK(csp_ctx_err(G.ctx[t->idx]) == CSP_ECANCELED, "a cancelled context came back");
    }
}

static void task_main(void *arg)
{
    run_prog(arg);
    atomic_store_explicit(&g_cur_op[((tctx_t *)arg)->idx], -1, memory_order_relaxed);
    int rc = csp_chan_send(g_done, NULL);
    CHECK(rc == 0, "send on the done channel gave %d", rc);
}

/* ---- the harness ------------------------------------------------------------------ */

static void parse(const uint8_t *d, size_t n)
{
    size_t p = 0;
#define NEXT() (p < n ? d[p++] : 0)
    uint8_t h0 = NEXT(), h1 = NEXT();
    G.ntasks = 1 + (h0 & 3);
    G.plain = (h0 >> 2) & 1;
    G.pinned = (h0 >> 3) & 1;
    G.grace = k_grace[(h0 >> 4) & 3];
    G.model = G.ntasks == 1;
    G.nchan = 1 + (h1 & 3);
    for (int i = 0; i < G.nchan; i++) {
        uint8_t b = NEXT();
        G.cap[i] = k_cap[b & 7];
        G.esz[i] = k_esz[(b >> 3) & 3];
    }
    int sends[MAX_TASKS] = { 0 }, total = 0;
    while (p < n && total < MAX_OPS) {
        uint8_t b0 = NEXT(), b1 = NEXT();
        op_t op = { 0 };
        op.kind = k_kind[b0 & 31];
        int task = (b0 >> 5) % G.ntasks;
        op.chan = (uint8_t)((b1 & 3) % G.nchan);
        op.dk = k_dk[(b1 >> 2) & 7];
        op.extra = b1 >> 5;
        if (op.kind == OP_CLOSE && op.extra < 6)
            op.kind = OP_LEN; /* closes end a channel's interesting life: 1 in 128 ops */
        if (op.kind == OP_CANCEL && op.extra < 6)
            op.kind = OP_YIELD; /* and so do cancels */
        int need = op.kind == OP_SEND || op.kind == OP_TRY_SEND || op.kind == OP_SEND_CTX;
        if (op.kind == OP_SELECT || op.kind == OP_SELECT_BIG || op.kind == OP_SELECT_CTX) {
            op.ncases = (uint8_t)(op.kind == OP_SELECT       ? 1 + (op.extra & 3)
                                  : op.kind == OP_SELECT_CTX ? (op.extra & 3) /* 0: ctx only */
                                                             : SMALL_CASES * 4 + 1 + (op.extra >> 1));
            for (int i = 0; i < op.ncases; i++) {
                op.cases[i] = NEXT();
                need += (op.cases[i] & 4) != 0;
            }
        }
        if (sends[task] + need > MAX_SEQ)
            continue;
        sends[task] += need;
        G.ops[task][G.t[task].nops++] = op;
        total++;
    }
#undef NEXT
}

static void close_all(void)
{
    for (int i = 0; i < G.nchan; i++) {
        int rc = csp_chan_close(G.ch[i]);
        CHECK(rc == 0 || rc == CSP_ECLOSED, "harness close of chan %d gave %d", i, rc);
        if (rc == 0)
            atomic_fetch_add_explicit(&g_close_ok[i], 1, memory_order_relaxed);
        if (G.model) {
            CHECK(rc == (G.m[i].closed ? CSP_ECLOSED : 0), "model: final close of %d gave %d", i,
                  rc);
            G.m[i].closed = true;
        }
    }
}

/* Waits for n "finished" messages; after the grace period closes every
 * channel and cancels the root (which must let every task finish), then
 * allows HANG_NS. A single-task program gets HANG_NS from the start. */
static void wait_tasks(int n)
{
    bool closed = false;
    csp_time_t dl = G.model ? csp_now() + HANG_NS : csp_now() + G.grace;
    while (n > 0) {
        int rc = csp_chan_recv_until(g_done, NULL, dl);
        if (rc == 0) {
            n--;
            continue;
        }
        CHECK(rc == CSP_ETIMEDOUT, "recv on the done channel gave %d", rc);
        if (G.model || closed) {
            for (int k = G.plain ? 1 : 0; k < G.ntasks; k++) {
                int i = atomic_load_explicit(&g_cur_op[k], memory_order_relaxed);
                const op_t *op = i >= 0 ? &G.ops[k][i] : NULL;
                fprintf(stderr, "fuzz_chan: task %d: ", k);
                if (!op) {
                    fprintf(stderr, "%s\n", i == -1 ? "finished" : "never started running");
                    continue;
                }
                fprintf(stderr, "in op %d of %d: %s chan %d dk %d extra %d", i, G.t[k].nops,
                        k_op_name[op->kind], op->chan, op->dk, op->extra);
                for (int j = 0; j < op->ncases; j++)
                    fprintf(stderr, "%s%02x", j ? " " : " cases ", op->cases[j]);
                fprintf(stderr, "\n");
            }
        }
        CHECK(!G.model && !closed, "hang: %d task(s) still running %d s after %s", n,
              (int)(HANG_NS / CSP_SECOND),
              G.model ? "the start of a single-task program" : "every channel was closed");
        STAT(ST_HARNESS_CLOSE);
        close_all();
        csp_ctx_cancel(G.root);
        closed = true;
        dl = csp_now() + HANG_NS;
    }
}

static void final_checks(void)
{
    tctx_t *h = &G.t[HARNESS];
    close_all();
    long lost[MAX_CHANS] = { 0 };
    for (int ci = 0; ci < G.nchan; ci++) {
        size_t es = G.esz[ci];
        for (;;) { /* drain: values buffered before close are still received */
            unsigned char buf[BUFSZ];
            memset(buf, 0xAA, BUFSZ);
            int rc = csp_chan_try_recv(G.ch[ci], buf);
            if (rc != 0) {
                CHECK(rc == CSP_ECLOSED, "drain of closed chan %d gave %d", ci, rc);
                CHECK(all_bytes(buf, 0, es) && all_bytes(buf + es, 0xAA, BUFSZ - es),
                      "drain: ECLOSED out not zero-filled");
                break;
            }
            got_value(h, ci, buf);
        }
        CHECK(csp_chan_len(G.ch[ci]) == 0 && csp_chan_closed(G.ch[ci]) == 1,
              "chan %d: after the drain len %zu closed %d", ci, csp_chan_len(G.ch[ci]),
              csp_chan_closed(G.ch[ci]));
        if (G.model)
            CHECK(G.m[ci].count == 0, "model: %d value(s) left in chan %d", G.m[ci].count, ci);
        int cok = atomic_load_explicit(&g_close_ok[ci], memory_order_relaxed);
        CHECK(cok == 1, "chan %d: %d successful closes", ci, cok);
    }
    for (int vt = 0; vt < G.ntasks; vt++)
        for (int seq = 0; seq < G.t[vt].seq; seq++) {
            int ci = G.offered[vt][seq] - 1;
            int r = atomic_load_explicit(&g_received[vt][seq], memory_order_relaxed);
            if (!G.ok[vt][seq])
                CHECK(r == 0, "value (sender %d seq %d chan %d) received but its send failed", vt,
                      seq, ci);
            else if (r == 0)
                lost[ci]++;
        }
    for (int ci = 0; ci < G.nchan; ci++) {
        if (G.esz[ci]) {
            long d = atomic_load_explicit(&g_discards[ci], memory_order_relaxed);
            CHECK(lost[ci] == d,
                  "chan %d: %ld delivered value(s) never seen, %ld receive(s) discarded: a "
                  "delivered value was lost or a receive made one up", ci, lost[ci], d);
        } else {
            long s = atomic_load_explicit(&g_sig_sent[ci], memory_order_relaxed);
            long r = atomic_load_explicit(&g_sig_recv[ci], memory_order_relaxed);
            CHECK(s == r, "signal chan %d: %ld successful sends, %ld successful receives", ci, s,
                  r);
        }
    }
}

static int g_workers = 2;

static void runtime_start(void)
{
    const char *e = getenv("FUZZ_CHAN_WORKERS");
    if (e && *e)
        g_workers = atoi(e);
    if (g_workers < 1 || g_workers > 64)
        g_workers = 2;
    csp_config_t cfg = { .workers = g_workers };
    int rc = csp_init(&cfg);
    if (rc != 0) {
        fprintf(stderr, "fuzz_chan: csp_init: %s\n", csp_strerror(rc));
        exit(1);
    }
    g_done = csp_chan_make(0, MAX_TASKS);
    if (!g_done) {
        fprintf(stderr, "fuzz_chan: csp_chan_make failed\n");
        exit(1);
    }
}

static bool g_print_progs; /* replay -p: print each input's programs */

static void print_progs(void)
{
    static const char *const dk_name[] = { "poll", "past", "1us", "20us", "200us", "1ms",
                                           "forever", "try" };
    printf("input: tasks=%d plain=%d pinned=%d grace=%lld us chans:", G.ntasks, G.plain,
           G.pinned, (long long)(G.grace / 1000));
    for (int i = 0; i < G.nchan; i++)
        printf(" %d:[cap %zu elem %zu]", i, G.cap[i], G.esz[i]);
    printf("\n");
    for (int k = 0; k < G.ntasks; k++) {
        printf("  task %d%s:", k, G.plain && k == 0 ? " (plain thread)" : "");
        for (int i = 0; i < G.t[k].nops; i++) {
            const op_t *op = &G.ops[k][i];
            printf(" %s(c%d,%s,x%d", k_op_name[op->kind], op->chan, dk_name[op->dk], op->extra);
            for (int j = 0; j < op->ncases; j++)
                printf("%s%02x", j ? " " : ",", op->cases[j]);
            printf(")");
        }
        printf("\n");
    }
    fflush(stdout);
}

static void run_input(const uint8_t *data, size_t size)
{
    memset(&G, 0, sizeof G);
    G.data = data;
    G.size = size;
    for (int i = 0; i <= MAX_TASKS; i++) {
        G.t[i].idx = i;
        for (int a = 0; a < MAX_TASKS; a++)
            for (int b = 0; b < MAX_CHANS; b++)
                G.t[i].last_seq[a][b] = -1;
    }
    parse(data, size);
    if (g_print_progs)
        print_progs();
    for (int i = 0; i < MAX_TASKS; i++)
        for (int s = 0; s < MAX_SEQ; s++)
            atomic_store_explicit(&g_received[i][s], 0, memory_order_relaxed);
    for (int i = 0; i < MAX_CHANS; i++) {
        atomic_store_explicit(&g_sig_sent[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_sig_recv[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_discards[i], 0, memory_order_relaxed);
        atomic_store_explicit(&g_close_ok[i], 0, memory_order_relaxed);
    }
    for (int i = 0; i < G.nchan; i++) {
        G.ch[i] = csp_chan_make(G.esz[i], G.cap[i]);
        CHECK(G.ch[i] != NULL, "csp_chan_make(%zu, %zu) failed", G.esz[i], G.cap[i]);
    }
    G.root = csp_ctx_with_cancel(csp_ctx_background());
    CHECK(G.root != NULL, "csp_ctx_with_cancel(background) failed");
    for (int k = 0; k < G.ntasks; k++) {
        G.ctx[k] = csp_ctx_with_cancel(G.root);
        CHECK(G.ctx[k] != NULL, "csp_ctx_with_cancel(root) failed");
    }
    STAT(ST_INPUTS);
    if (G.model)
        STAT(ST_MODEL);
    /* csp_go orders everything above before the tasks run */
    csp_task_opts_t opts = { .flags = G.pinned ? CSP_TASK_PINNED : 0 };
    int first = G.plain ? 1 : 0;
    for (int k = first; k < G.ntasks; k++) {
        atomic_store_explicit(&g_cur_op[k], -2, memory_order_relaxed);
        int rc = csp_go_opts(task_main, &G.t[k], &opts);
        CHECK(rc == 0, "csp_go_opts gave %d", rc);
    }
    if (G.plain) {
        G.t[0].plain = true;
        run_prog(&G.t[0]);
    }
    /* every task's last act is a send on g_done: receiving them orders all
     * their writes before the final checks */
    wait_tasks(G.ntasks - first);
    final_checks();
    csp_ctx_cancel(G.root);
    for (int k = 0; k < G.ntasks; k++) {
        CHECK(csp_ctx_err(G.ctx[k]) == CSP_ECANCELED, "root cancelled, task %d's context not", k);
        csp_ctx_release(G.ctx[k]);
    }
    csp_ctx_release(G.root);
    for (int i = 0; i < G.nchan; i++)
        csp_chan_release(G.ch[i]);
}

#ifdef FUZZ_CHAN_LIBFUZZER

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    runtime_start();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_input(data, size);
    return 0;
}

#else /* the replay driver */

#include <errno.h>

static uint64_t xs_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Input number i of seed: 2..600 pseudo-random bytes. */
static size_t gen_input(uint64_t seed, long i, uint8_t *buf, size_t max)
{
    uint64_t s = (seed * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)i * 0xD1B54A32D192ED03ull) ^ 1;
    for (int k = 0; k < 4; k++)
        xs_next(&s);
    size_t n = 2 + (size_t)(xs_next(&s) % 599);
    if (n > max)
        n = max;
    for (size_t k = 0; k < n; k++)
        buf[k] = (uint8_t)(xs_next(&s) >> 32);
    return n;
}

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [-n inputs] [-s seed] [-i index] [-r repeat] [-p 1] [file...]\n"
            "  runs the fuzz_chan target over pseudo-random inputs (default -n 2000 -s 1),\n"
            "  input <index> of the seed only (-i), or the given files (libFuzzer\n"
            "  reproducers / corpus entries); each one <repeat> times (-r, default 1:\n"
            "  interleavings differ from run to run); -p 1 prints each input's programs.\n"
            "  Env FUZZ_CHAN_WORKERS: workers (2).\n",
            argv0);
    return 2;
}

static bool parse_num(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (errno || end == s || *end || v < 0)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    long long n = 2000, seed = 1, only = -1, repeat = 1;
    int a = 1;
    for (; a < argc && argv[a][0] == '-'; a += 2) {
        if (a + 1 >= argc)
            return usage(argv[0]);
        long long v;
        if (!parse_num(argv[a + 1], &v))
            return usage(argv[0]);
        if (!strcmp(argv[a], "-n"))
            n = v;
        else if (!strcmp(argv[a], "-s"))
            seed = v;
        else if (!strcmp(argv[a], "-i"))
            only = v;
        else if (!strcmp(argv[a], "-r") && v >= 1)
            repeat = v;
        else if (!strcmp(argv[a], "-p"))
            g_print_progs = v != 0;
        else
            return usage(argv[0]);
    }
    runtime_start();
    csp_time_t t0 = csp_now();
    static uint8_t buf[4096];
    static char name[512];
    g_input_name = name;
    long long ran = 0;
    bool files = a < argc;
    if (files) {
        for (; a < argc; a++) {
            FILE *f = fopen(argv[a], "rb");
            if (!f) {
                fprintf(stderr, "fuzz_chan_replay: %s: %s\n", argv[a], strerror(errno));
                return 1;
            }
            size_t len = fread(buf, 1, sizeof buf, f);
            fclose(f);
            snprintf(name, sizeof name, "file %s", argv[a]);
            for (long long r = 0; r < repeat; r++, ran++)
                run_input(buf, len);
        }
    } else {
        for (long long i = only >= 0 ? only : 0; i < (only >= 0 ? only + 1 : n); i++) {
            size_t len = gen_input((uint64_t)seed, (long)i, buf, sizeof buf);
            snprintf(name, sizeof name, "input %lld of seed %lld (reproduce: %s -s %lld -i %lld)",
                     i, seed, argv[0], seed, i);
            for (long long r = 0; r < repeat; r++, ran++)
                run_input(buf, len);
        }
    }
    double secs = (double)(csp_now() - t0) / 1e9;
    printf("fuzz_chan_replay: %lld input(s) ok in %.2f s, %d workers;", ran, secs, g_workers);
    for (int i = 0; i < ST__N; i++)
        printf(" %s=%ld", k_st_name[i], atomic_load_explicit(&g_stats[i], memory_order_relaxed));
    printf("\n");
    csp_shutdown();
    /* Generated runs of a few hundred inputs must have exercised every kind
     * of outcome, or the target has stopped testing what it claims to. */
    if (!files && only < 0 && n >= 500) {
        for (int i = 0; i < ST__N; i++)
            if (atomic_load_explicit(&g_stats[i], memory_order_relaxed) == 0) {
                fprintf(stderr, "fuzz_chan_replay: no '%s' outcome in %lld inputs\n",
                        k_st_name[i], n);
                return 1;
            }
    }
    return 0;
}

#endif
