/*
 * librustydb_malloc under threads, thread exit and fork.
 *
 * Waves of worker threads allocate blocks of every size range (small, medium,
 * large, over-aligned, grown by realloc), stamp them, and trade them through a
 * shared table, so most blocks are freed by another thread — often after the
 * thread that allocated them has exited. Each block's stamp is checked when it
 * is freed (overlapping or corrupted blocks fail). A pthread key destructor
 * allocates during thread exit. Meanwhile a forking thread forks repeatedly:
 * each child allocates, starts threads of its own, checks, and exits 0.
 * An alarm turns a deadlock into a failure.
 *
 * Run with keys.so preloaded too, the program's own pthread key is a
 * second-level one (>= 32): each worker's first allocation is then the calloc
 * inside its pthread_setspecific, and the allocator registers the thread's
 * cache nested in that call. Every exited thread's cache must have left the
 * allocator's registry by the end.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <malloc.h>

#define SLOTS 4096
#define WAVES 4
#define THREADS 8
#define OPS 20000

static _Atomic(uint64_t *) slots[SLOTS];
static atomic_int failures;
static atomic_int stop_forking;
static pthread_key_t exit_key;

static void fail(const char *what) {
    fprintf(stderr, "threads: %s\n", what);
    atomic_fetch_add(&failures, 1);
}

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A block: word 0 = size in bytes, word 1 = stamp; the last word repeats the stamp. */
static uint64_t *stamp(uint64_t *b, size_t bytes, uint64_t tag) {
    size_t words = bytes / 8;
    b[0] = bytes;
    b[1] = tag;
    b[words - 1] = tag ^ bytes;
    return b;
}

static void check_and_free(uint64_t *b) {
    if (!b) return;
    size_t bytes = b[0];
    if (bytes < 24 || bytes > (8u << 20) || b[bytes / 8 - 1] != (b[1] ^ bytes)) {
        fail("block stamp corrupted");
        return;
    }
    if (malloc_usable_size(b) < bytes) fail("usable size below the request");
    free(b);
}

static size_t pick_size(uint64_t r) {
    switch (r % 16) {
    case 0: return 32 + (r >> 8) % 65536;             /* medium */
    case 1:
        if ((r >> 4) % 4 == 0) return 32 + (r >> 8) % (2u << 20); /* up to 2 MiB: large */
        /* fall through */
    default: return 24 + (r >> 8) % 512;              /* small: 3 words at least */
    }
}

static uint64_t *make_block(uint64_t *s) {
    uint64_t r = rng(s);
    size_t bytes = pick_size(r) & ~(size_t)7;
    uint64_t *b = NULL;
    switch ((r >> 40) % 8) {
    case 0: {
        size_t align = (size_t)16 << ((r >> 44) % 13); /* 16 B .. 64 KiB */
        if (posix_memalign((void **)&b, align, bytes) != 0) b = NULL;
        if (b && (uintptr_t)b % align) fail("misaligned block");
        break;
    }
    case 1: {
        b = malloc(16);
        if (!b) break;
        uint64_t *g = realloc(b, bytes); /* grow through the classes */
        if (!g) {
            free(b);
            b = NULL;
        } else {
            b = g;
        }
        break;
    }
    case 2: b = calloc(1, bytes); break;
    default: b = malloc(bytes);
    }
    if (!b) {
        fail("allocation failed");
        return NULL;
    }
    return stamp(b, bytes, r);
}

static void on_thread_exit(void *v) {
    /* Allocation during thread exit, before or after the allocator's own hook. */
    uint64_t s = (uintptr_t)v | 1;
    for (int i = 0; i < 200; i++) check_and_free(make_block(&s));
    char *p = strdup("exiting");
    free(p);
}

static void *worker(void *arg) {
    uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15ull | 1;
    pthread_setspecific(exit_key, (void *)(uintptr_t)s);
    uint64_t *mine[64] = {0};
    for (int i = 0; i < OPS; i++) {
        uint64_t r = rng(&s);
        uint64_t *b = make_block(&s);
        if (r % 3 == 0) {
            /* Keep it a while in this thread. */
            int k = (int)((r >> 20) % 64);
            check_and_free(mine[k]);
            mine[k] = b;
        } else {
            /* Trade: whatever was in the slot is freed here. */
            check_and_free(atomic_exchange(&slots[(r >> 24) % SLOTS], b));
        }
    }
    for (int k = 0; k < 64; k++) check_and_free(mine[k]);
    return NULL;
}

static void *child_thread(void *arg) {
    uint64_t s = (uintptr_t)arg | 1;
    for (int i = 0; i < 2000; i++) check_and_free(make_block(&s));
    return NULL;
}

/* Runs in a forked child: the allocator must be usable, with threads too. */
static int child_work(uint64_t seed) {
    uint64_t s = seed | 1;
    void *keep[256];
    for (int i = 0; i < 256; i++) keep[i] = make_block(&s);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, child_thread, (void *)(uintptr_t)(seed + i))) return 3;
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 256; i++) check_and_free(keep[i]);
    return atomic_load(&failures) ? 4 : 0;
}

static void *forker(void *arg) {
    (void)arg;
    uint64_t n = 0;
    while (!atomic_load(&stop_forking)) {
        pid_t pid = fork();
        if (pid == 0) _exit(child_work(++n * 7919));
        if (pid < 0) {
            fail("fork failed");
            break;
        }
        int st = 0;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "threads: child status %d\n", st);
            fail("forked child failed");
        }
        n++;
    }
    printf("threads: %llu forks\n", (unsigned long long)n);
    return NULL;
}

/* With librustydb_malloc: the number of live thread caches in its report
 * (every worker has exited, so only the main thread's may remain). -1 when
 * running on another allocator. */
static long live_thread_caches(void) {
    int (*print)(int) = (int (*)(int))dlsym(RTLD_DEFAULT, "rustydb_malloc_stats_print");
    if (!print) return -1;
    int fds[2];
    if (pipe(fds) != 0) return -2;
    if (print(fds[1]) != 0) return -3;
    close(fds[1]);
    static char buf[1 << 16];
    size_t n = 0;
    ssize_t r;
    while (n + 1 < sizeof buf && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
    buf[n] = 0;
    close(fds[0]);
    const char *t = strstr(buf, "thread caches ");
    return t ? strtol(t + 14, NULL, 10) : -4;
}

int main(void) {
    alarm(240);
    if (pthread_key_create(&exit_key, on_thread_exit)) return 2;
    pthread_t f;
    pthread_create(&f, NULL, forker, NULL);
    for (int w = 0; w < WAVES; w++) {
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++)
            if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(w * THREADS + i + 1))) {
                fail("pthread_create");
                return 1;
            }
        for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    }
    atomic_store(&stop_forking, 1);
    pthread_join(f, NULL);
    /* A fork from the main thread with every worker gone. */
    pid_t pid = fork();
    if (pid == 0) _exit(child_work(42));
    int st = 0;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) fail("last child");
    for (int i = 0; i < SLOTS; i++) check_and_free(atomic_exchange(&slots[i], NULL));
    /* Every exited thread took its cache out of the registry: a cache left
     * there would dangle once its thread's stack is reused or unmapped. */
    long caches = live_thread_caches();
    printf("threads: live thread caches at the end: %ld\n", caches);
    if (caches == -2 || caches == -3 || caches == -4 || caches > 1) fail("thread caches left registered");
    if (atomic_load(&failures)) {
        fprintf(stderr, "threads: %d failures\n", atomic_load(&failures));
        return 1;
    }
    printf("threads: all checks passed\n");
    return 0;
}
