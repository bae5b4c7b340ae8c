/*
 * fr_threads.c -- fastrnn's persistent thread pool and phased work queue.
 *
 * Why: a layer call is short (tens of microseconds to milliseconds) and its
 * recurrence needs one synchronisation per time step, so threads are created
 * once and kept; a job wakes them through a condition variable (after a short
 * spin, so back-to-back calls -- layers, directions -- find them awake), and
 * the phases inside a job synchronise through a work queue of atomic counters
 * (fr_queue_phase): a thread that is late or descheduled never holds up work it
 * has not claimed (each thread reports the chunks it ran once per phase, so it
 * holds up the phase end only between its last chunk and that report), so an
 * oversubscribed machine degrades to one thread's speed
 * instead of stalling at every step.
 *
 * Cores are shared between concurrent callers as tokens (fr_tokens_take): a call
 * takes up to the threads it asks for among the cores no other call holds (a call
 * alone takes all it asks for, even more than there are cores), and waits for one
 * when none is free; a call that had to wait takes at most half the cores, so that
 * callers that keep contending settle into running side by side on their own cores
 * (fewer meeting points: more throughput than taking turns on all of them).  So two
 * callers never run more threads than there are cores --
 * measured before: two Python threads each calling an LSTM got 0.77x of one caller's
 * throughput, as a call that found the pool busy ran a third thread on two cores --
 * and two small calls (one thread each) run side by side.  The pool runs one
 * multi-threaded job at a time; a call that gets several cores but finds it busy
 * runs on its caller alone and gives the other cores back.  Every wait of the
 * caller's thread polls the call's cancellation (fr_options.poll).
 * After fork() the child starts with no pool (pthread_atfork resets it).
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "fr_internal.h"

#if defined(__x86_64__) /* (32-bit x86: some SSE CPUs fault on setting DAZ) */
#include <xmmintrin.h>
#define FR_MXCSR_FTZ_DAZ 0x8040u /* flush-to-zero (bit 15), denormals-are-zero (bit 6) */
#define FR_MXCSR_FLAGS 0x3fu     /* the sticky exception flags (bits 0-5) */
unsigned fr_fp_flush_denormals(void)
{
    const unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | FR_MXCSR_FTZ_DAZ);
    return saved;
}
void fr_fp_restore(unsigned saved)
{
    /* the caller's modes back; the exception flags raised meanwhile stay raised */
    _mm_setcsr((_mm_getcsr() & FR_MXCSR_FLAGS) | (saved & ~FR_MXCSR_FLAGS));
}
#else
unsigned fr_fp_flush_denormals(void)
{
    return 0;
}
void fr_fp_restore(unsigned saved)
{
    (void)saved;
}
#endif

#if defined(__x86_64__) || defined(__i386__)
#define FR_PAUSE() __builtin_ia32_pause()
#else
#define FR_PAUSE() ((void)0)
#endif

#define FR_SPIN_WAKE 20000 /* pauses a worker spins for the next job before sleeping */
#define FR_SPIN_YIELD 4000 /* pauses a waiting thread spins before it starts yielding */

/* One step of a wait loop: pause, and after a while give the core away, so that
 * a waiter never starves the thread it waits for when cores are oversubscribed. */
static void fr_wait_step(int *spins)
{
    if (++*spins < FR_SPIN_YIELD)
        FR_PAUSE();
    else
        sched_yield();
}

static struct {
    pthread_mutex_t busy; /* held by the caller whose job runs */
    pthread_mutex_t mu;   /* guards the sleep/wake of the workers */
    pthread_cond_t cv;
    int nworkers;         /* started so far (guarded by busy) */
    unsigned gen;         /* job generation (atomic) */
    unsigned gen_at_start; /* gen when the workers being started were created */
    int done;             /* workers finished with the current job (atomic) */
    fr_task_fn fn;
    void *arg;
    int nthreads;
} fr_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
             0, 0, 0, 0, NULL, NULL, 1};

/* Cores shared between concurrent calls (fr_tokens_take).  Taking and giving back are one
 * atomic update while cores are free (small calls from several threads meet at no lock);
 * the mutex and condition are for calls that must wait. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int free;    /* atomic: cores no call holds (negative while a lone call asked for more) */
    int total;   /* atomic: fr_online_cpus(), 0 before first use */
    int waiters; /* atomic: calls waiting for a core */
} fr_tokens = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static pthread_once_t fr_atfork_once = PTHREAD_ONCE_INIT;

static void fr_pool_child_reset(void)
{
    pthread_mutex_init(&fr_tokens.mu, NULL);
    pthread_cond_init(&fr_tokens.cv, NULL);
    fr_tokens.free = fr_tokens.total = fr_tokens.waiters = 0; /* no call runs in the child */
    pthread_mutex_init(&fr_pool.busy, NULL);
    pthread_mutex_init(&fr_pool.mu, NULL);
    pthread_cond_init(&fr_pool.cv, NULL);
    fr_pool.nworkers = 0;
    __atomic_store_n(&fr_pool.gen, 0u, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fr_pool.done, 0, __ATOMIC_SEQ_CST);
}

static void fr_register_atfork(void)
{
    pthread_atfork(NULL, NULL, fr_pool_child_reset);
}

static void *fr_worker(void *p)
{
    const int id = (int)(intptr_t)p; /* 1 .. nworkers; the caller is thread 0 */
    /* the generation before the job that started us: that job is still to run */
    unsigned seen = __atomic_load_n(&fr_pool.gen_at_start, __ATOMIC_ACQUIRE);
    for (;;) {
        unsigned gen;
        int spins = 0;
        while ((gen = __atomic_load_n(&fr_pool.gen, __ATOMIC_ACQUIRE)) == seen) {
            if (++spins < FR_SPIN_WAKE) {
                FR_PAUSE();
                continue;
            }
            pthread_mutex_lock(&fr_pool.mu);
            while (__atomic_load_n(&fr_pool.gen, __ATOMIC_ACQUIRE) == seen)
                pthread_cond_wait(&fr_pool.cv, &fr_pool.mu);
            pthread_mutex_unlock(&fr_pool.mu);
            spins = 0;
        }
        seen = gen;
        if (id < fr_pool.nthreads)
            fr_pool.fn(fr_pool.arg, id, fr_pool.nthreads);
        __atomic_add_fetch(&fr_pool.done, 1, __ATOMIC_ACQ_REL);
    }
    return NULL;
}

/* Online CPUs, read once: sysconf(_SC_NPROCESSORS_ONLN) reads a file under /sys on
 * every call (measured at about a third of the time of a one-step call before it
 * was cached). */
static int fr_cpus = 0; /* atomic; 0: not read yet */

int fr_online_cpus(void)
{
    int n = __atomic_load_n(&fr_cpus, __ATOMIC_RELAXED);
    if (n <= 0) {
        const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (cpus > FR_MAX_THREADS ? FR_MAX_THREADS : (int)cpus) : 1;
        __atomic_store_n(&fr_cpus, n, __ATOMIC_RELAXED);
    }
    return n;
}

static long long fr_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- serial sections (see fastrnn.h) ----
 * Each taking part thread owns one of 64 slots (a bit of fr_serial_used), given back when it
 * exits (a pthread key's destructor); a thread that finds none free does not take part until
 * one is.  (After fork() the child keeps the bits of threads that did not come with it: at
 * worst it has fewer slots.) */

#define FR_SERIAL_SLOTS 64
static long long fr_serial_since[FR_SERIAL_SLOTS]; /* atomic: when the slot's thread entered, 0 = out */
static unsigned long long fr_serial_used;          /* atomic: the slots taken, one bit each */
static pthread_key_t fr_serial_key;
static int fr_serial_key_ok;
static pthread_once_t fr_serial_once = PTHREAD_ONCE_INIT;
static __thread int fr_serial_slot = -1; /* this thread's slot; -1: none */

static void fr_serial_release(void *value) /* at the exit of a thread that had a slot */
{
    const int s = (int)(intptr_t)value - 1;
    __atomic_store_n(&fr_serial_since[s], 0, __ATOMIC_RELEASE);
    __atomic_fetch_and(&fr_serial_used, ~(1ULL << s), __ATOMIC_ACQ_REL);
}

static void fr_serial_init(void)
{
    fr_serial_key_ok = pthread_key_create(&fr_serial_key, fr_serial_release) == 0;
}

/* This thread's slot, taken on first use; -1 when none is free (or no key could be made). */
static int fr_serial_my_slot(void)
{
    unsigned long long used;
    if (fr_serial_slot >= 0)
        return fr_serial_slot;
    pthread_once(&fr_serial_once, fr_serial_init);
    used = __atomic_load_n(&fr_serial_used, __ATOMIC_ACQUIRE);
    while (fr_serial_key_ok && used != ~0ULL) {
        const int k = __builtin_ctzll(~used);
        if (__atomic_compare_exchange_n(&fr_serial_used, &used, used | (1ULL << k), 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            if (pthread_setspecific(fr_serial_key, (void *)(intptr_t)(k + 1)) != 0) {
                __atomic_fetch_and(&fr_serial_used, ~(1ULL << k), __ATOMIC_ACQ_REL);
                return -1;
            }
            fr_serial_slot = k;
            return k;
        }
    }
    return -1;
}

void fr_serial_enter(void)
{
    const int s = fr_serial_my_slot();
    if (s >= 0)
        __atomic_store_n(&fr_serial_since[s], fr_now_ns(), __ATOMIC_RELEASE);
}

void fr_serial_leave(void)
{
    const int s = fr_serial_slot; /* (a thread without a slot has nothing to leave) */
    if (s >= 0)
        __atomic_store_n(&fr_serial_since[s], 0, __ATOMIC_RELEASE);
}

void fr_serial_wait(long max_ns)
{
    const int me = fr_serial_slot;
    const long long start = fr_now_ns();
    long long now = start;
    int i, busy;
    do {
        unsigned long long others = __atomic_load_n(&fr_serial_used, __ATOMIC_ACQUIRE);
        if (me >= 0)
            others &= ~(1ULL << me);
        busy = 0;
        while (others && !busy) {
            const long long since = __atomic_load_n(&fr_serial_since[__builtin_ctzll(others)], __ATOMIC_ACQUIRE);
            busy = since != 0 && now - since < max_ns;
            others &= others - 1;
        }
        if (!busy)
            return;
        for (i = 0; i < 32; ++i)
            FR_PAUSE();
        now = fr_now_ns();
    } while (now - start < max_ns);
}

/* ---- cancellation ---- */

void fr_cancel_init(fr_cancel *c, const fr_options *o)
{
    c->poll = o ? o->poll : NULL;
    c->ctx = o ? o->poll_ctx : NULL;
    c->flag = 0;
    c->next_ns = c->poll ? fr_now_ns() + FR_POLL_NS : 0;
}

int fr_cancel_check(fr_cancel *c, int tid)
{
    if (!c)
        return 0;
    if (tid == 0 && c->poll && !__atomic_load_n(&c->flag, __ATOMIC_RELAXED)) {
        const long long now = fr_now_ns();
        if (now >= c->next_ns) {
            c->next_ns = now + FR_POLL_NS;
            if (c->poll(c->ctx))
                __atomic_store_n(&c->flag, 1, __ATOMIC_RELAXED);
        }
    }
    return __atomic_load_n(&c->flag, __ATOMIC_RELAXED);
}

/* ---- cores, shared between callers ---- */

/* Take up to `want` cores: all of them when no other call holds any, else as many as
 * are free, waiting for one when none is; -1 when cancelled while waiting. */
/* k cores out of `free` (of `total`) for a call asking `want`: alone, all it asks for; after
 * waiting (calls are contending) at most half the cores, so that two callers settle into
 * running side by side -- each call on its own cores, with fewer meeting points -- instead of
 * taking turns on all of them. */
static int fr_tokens_share(int want, int free, int total, int waited)
{
    int k = free == total && !waited ? want : want < free ? want : free;
    if (waited && k > total / 2)
        k = total / 2 > 1 ? total / 2 : 1;
    return k;
}

/* Cores for a call asking `want` while some are free (one atomic update), or 0 when none is. */
static int fr_tokens_try(int want, int total, int waited)
{
    int f = __atomic_load_n(&fr_tokens.free, __ATOMIC_SEQ_CST);
    while (f > 0) {
        const int k = fr_tokens_share(want, f, total, waited);
        if (__atomic_compare_exchange_n(&fr_tokens.free, &f, f - k, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return k;
    }
    return 0;
}

static int fr_tokens_take(int want, fr_cancel *cancel)
{
    int k, total = __atomic_load_n(&fr_tokens.total, __ATOMIC_ACQUIRE);
    if (total == 0) {
        pthread_mutex_lock(&fr_tokens.mu);
        if (fr_tokens.total == 0) {
            __atomic_store_n(&fr_tokens.free, fr_online_cpus(), __ATOMIC_SEQ_CST);
            __atomic_store_n(&fr_tokens.total, fr_tokens.free, __ATOMIC_SEQ_CST);
        }
        total = fr_tokens.total;
        pthread_mutex_unlock(&fr_tokens.mu);
    }
    k = fr_tokens_try(want, total, 0); /* a core is free: no lock */
    if (k > 0)
        return k;
    pthread_mutex_lock(&fr_tokens.mu);
    __atomic_add_fetch(&fr_tokens.waiters, 1, __ATOMIC_SEQ_CST); /* before looking again: see fr_tokens_give */
    for (;;) {
        struct timespec until;
        k = fr_tokens_try(want, total, 1);
        if (k > 0)
            break;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 2000000; /* 2 ms: poll the cancellation between waits */
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec += 1;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&fr_tokens.cv, &fr_tokens.mu, &until);
        if (__atomic_load_n(&fr_tokens.free, __ATOMIC_SEQ_CST) <= 0 && cancel && cancel->poll) {
            int stop;
            pthread_mutex_unlock(&fr_tokens.mu);
            stop = fr_cancel_check(cancel, 0);
            pthread_mutex_lock(&fr_tokens.mu);
            if (stop) {
                k = -1;
                break;
            }
        }
    }
    __atomic_sub_fetch(&fr_tokens.waiters, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&fr_tokens.mu);
    return k;
}

static void fr_tokens_give(int k)
{
    __atomic_add_fetch(&fr_tokens.free, k, __ATOMIC_SEQ_CST);
    /* A waiter counts itself, then looks at `free`, then sleeps, all under the mutex; seen in
     * that order (sequentially consistent), either it saw the cores given here or this sees
     * it counted, and the broadcast (under the mutex) comes after it sleeps. */
    if (__atomic_load_n(&fr_tokens.waiters, __ATOMIC_SEQ_CST) > 0) {
        pthread_mutex_lock(&fr_tokens.mu);
        pthread_cond_broadcast(&fr_tokens.cv);
        pthread_mutex_unlock(&fr_tokens.mu);
    }
}

int fr_parallel_run(fr_task_fn fn, fr_prepare_fn prepare, void *arg, int nthreads, fr_cancel *cancel)
{
    int started, spins = 0, cores;
    if (nthreads > FR_MAX_THREADS)
        nthreads = FR_MAX_THREADS;
    if (nthreads < 1)
        nthreads = 1;
    pthread_once(&fr_atfork_once, fr_register_atfork);
    cores = fr_tokens_take(nthreads, cancel);
    if (cores < 0)
        return -1;
    if (cores <= 1 || pthread_mutex_trylock(&fr_pool.busy) != 0) {
        if (cores > 1)
            fr_tokens_give(cores - 1); /* alone on the caller: the others are free */
        if (prepare)
            prepare(arg, 1);
        fn(arg, 0, 1);
        fr_tokens_give(1);
        return 0;
    }
    nthreads = cores;
    /* start workers up to nthreads - 1 (never stopped; they sleep when idle) */
    __atomic_store_n(&fr_pool.gen_at_start, __atomic_load_n(&fr_pool.gen, __ATOMIC_ACQUIRE),
                     __ATOMIC_RELEASE);
    while (fr_pool.nworkers < nthreads - 1) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&th, &attr, fr_worker, (void *)(intptr_t)(fr_pool.nworkers + 1)) == 0;
        pthread_attr_destroy(&attr);
        if (!started)
            break;
        fr_pool.nworkers += 1;
    }
    if (nthreads > fr_pool.nworkers + 1) {
        fr_tokens_give(nthreads - (fr_pool.nworkers + 1));
        nthreads = fr_pool.nworkers + 1;
    }
    if (prepare)
        prepare(arg, nthreads);
    fr_pool.fn = fn;
    fr_pool.arg = arg;
    fr_pool.nthreads = nthreads;
    __atomic_store_n(&fr_pool.done, 0, __ATOMIC_RELEASE);
    pthread_mutex_lock(&fr_pool.mu);
    __atomic_add_fetch(&fr_pool.gen, 1u, __ATOMIC_ACQ_REL);
    pthread_cond_broadcast(&fr_pool.cv);
    pthread_mutex_unlock(&fr_pool.mu);

    fn(arg, 0, nthreads);

    /* every started worker reports, also those without a share of this job */
    while (__atomic_load_n(&fr_pool.done, __ATOMIC_ACQUIRE) < fr_pool.nworkers)
        fr_wait_step(&spins);
    pthread_mutex_unlock(&fr_pool.busy);
    fr_tokens_give(nthreads);
    return 0;
}

void fr_queue_init(fr_queue *q, int nowners, fr_cancel *cancel)
{
    int o;
    q->nowners = nowners;
    q->cancel = cancel;
    q->done = 0;
    for (o = 0; o < nowners; ++o)
        q->next[o * FR_QPAD] = 0;
}

void fr_cursor_init(fr_cursor *cur, int nowners)
{
    int o;
    for (o = 0; o < nowners; ++o) {
        cur->held[o] = -1;
        cur->base[o] = 0;
    }
    cur->total = 0;
}

/* Run phase of `nchunks` chunks: see fr_internal.h.  Tickets are monotonic over
 * the whole job: owner o's chunks of this phase are its tickets
 * [base[o], base[o] + count_o); a thread may hold one ticket per owner that it
 * claimed past a phase's end -- it is that owner's first chunk of a later phase,
 * and this thread runs it then (tickets are handed out in order, so a held ticket
 * is never below the current phase's base). */
void fr_queue_phase(fr_queue *q, fr_cursor *cur, int tid, ptrdiff_t nchunks, fr_chunk_fn fn,
                    void *ctx)
{
    const int n = q->nowners;
    int k, spins = 0;
    long long ran = 0; /* chunks this thread ran, added to q->done once (one shared write per phase) */
    /* A cancelled call skips every phase from now on, on every thread: nobody waits for
     * chunks the others no longer run (the flag never goes back). */
    if (fr_cancelled(q->cancel))
        return;
    if (n == 1) {
        ptrdiff_t c;
        for (c = 0; c < nchunks; ++c)
            fn(ctx, c, tid);
        return;
    }
    for (k = 0; k < n; ++k) {
        const int o = (tid + k) % n; /* own chunks first, then help the others */
        const ptrdiff_t lo = nchunks * o / n, cnt = nchunks * (o + 1) / n - lo;
        const long long end = cur->base[o] + cnt;
        long long *next = &q->next[o * FR_QPAD];
        if (cur->held[o] < 0) {
            if (k > 0 && __atomic_load_n(next, __ATOMIC_ACQUIRE) >= end)
                continue; /* nothing left to help with: do not claim a later phase's chunk */
            cur->held[o] = __atomic_fetch_add(next, 1, __ATOMIC_ACQ_REL);
        }
        while (cur->held[o] < end) {
            fn(ctx, lo + (ptrdiff_t)(cur->held[o] - cur->base[o]), tid);
            ++ran;
            if (k > 0 && __atomic_load_n(next, __ATOMIC_ACQUIRE) >= end) {
                cur->held[o] = -1;
                break;
            }
            cur->held[o] = __atomic_fetch_add(next, 1, __ATOMIC_ACQ_REL);
        }
    }
    if (ran)
        __atomic_add_fetch(&q->done, ran, __ATOMIC_ACQ_REL);
    for (k = 0; k < n; ++k)
        cur->base[k] += nchunks * (k + 1) / n - nchunks * k / n;
    cur->total += nchunks;
    /* the phase ends when every chunk has run (the next phase reads its results); the
     * caller's thread keeps polling the cancellation while it waits */
    while (__atomic_load_n(&q->done, __ATOMIC_ACQUIRE) < cur->total) {
        fr_wait_step(&spins);
        if ((tid == 0 && (spins & 255) == 0 && fr_cancel_check(q->cancel, 0)) || fr_cancelled(q->cancel))
            return;
    }
}
