/*
 * Every exported function of librustydb_malloc and its edge cases, checked
 * against glibc's documented behaviour. Runs linked (-lrustydb_malloc) and
 * under LD_PRELOAD; fails (exit 1) at the first wrong answer, printing which.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rustydb_memory.h"

static int failures;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                            \
        }                                                                          \
    } while (0)

/* Functions glibc 2.36 lacks, found at run time so the same source runs linked
 * to the library and under LD_PRELOAD (then the executable does not name it). */
static void *need(const char *name) {
    void *f = dlsym(RTLD_DEFAULT, name);
    if (!f) {
        fprintf(stderr, "abi: %s not found: not running on librustydb_malloc\n", name);
        exit(2);
    }
    return f;
}
#define rustydb_malloc_stats_print(fd) ((int (*)(int))need("rustydb_malloc_stats_print"))(fd)
#define free_sized(p, n) ((void (*)(void *, size_t))need("free_sized"))(p, n)
#define free_aligned_sized(p, a, n) \
    ((void (*)(void *, size_t, size_t))need("free_aligned_sized"))(p, a, n)

/* The compiler must not fold allocations away or reason about their results. */
static void *(*volatile do_malloc)(size_t) = malloc;
static void *(*volatile do_calloc)(size_t, size_t) = calloc;
static void *(*volatile do_realloc)(void *, size_t) = realloc;
static void (*volatile do_free)(void *) = free;
static void *(*volatile do_reallocarray)(void *, size_t, size_t) = reallocarray;
static void *(*volatile do_memalign)(size_t, size_t) = memalign;

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 31);
}

static int intact(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 31)) return 0;
    return 1;
}

/* The statistics report, read back through a pipe. */
static size_t stats_text(char *buf, size_t cap) {
    int fds[2];
    if (pipe(fds) != 0) return 0;
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    int rc = rustydb_malloc_stats_print(fds[1]);
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fds[0], buf + n, cap - 1 - n)) > 0) n += (size_t)r;
    buf[n] = 0;
    close(fds[0]);
    return rc == 0 ? n : 0;
}

/* Live objects of the class of `size` in the report's class table. */
static long live_in_class(const char *report, long class_size) {
    char key[32];
    snprintf(key, sizeof key, "\n  %8ld ", class_size);
    const char *line = strstr(report, key);
    if (!line) return 0;
    long size, live;
    return sscanf(line, " %ld %ld", &size, &live) == 2 ? live : -1;
}

static void test_ours_is_in_use(void) {
    static char before[1 << 16], after[1 << 16];
    CHECK(stats_text(before, sizeof before) > 0);
    CHECK(strstr(before, "rustydb-memory allocator") != NULL);
    void *keep[2000];
    for (int i = 0; i < 2000; i++) keep[i] = do_malloc(200); /* class 208 */
    CHECK(stats_text(after, sizeof after) > 0);
    CHECK(live_in_class(after, 208) >= live_in_class(before, 208) + 2000 - 64);
    for (int i = 0; i < 2000; i++) free(keep[i]);
    CHECK(rustydb_malloc_stats_print(-1) == -1 && errno == EBADF);
}

static void test_malloc_and_free(void) {
    /* malloc(0): distinct, non-null, 16-aligned. */
    void *a = do_malloc(0), *b = do_malloc(0);
    CHECK(a && b && a != b);
    CHECK((uintptr_t)a % 16 == 0);
    free(a);
    free(b);
    free(NULL);
    /* Every size to 64 KiB in steps, then powers of two to 64 MiB: aligned,
     * usable size at least the request, the whole usable size writable. */
    for (size_t n = 1; n <= (1u << 26); n = n < 65536 ? n + 1 + n / 8 : n * 2) {
        unsigned char *p = do_malloc(n);
        CHECK(p != NULL);
        if (!p) continue;
        CHECK((uintptr_t)p % 16 == 0);
        size_t u = malloc_usable_size(p);
        CHECK(u >= n);
        fill(p, u, (unsigned)n);
        CHECK(intact(p, u, (unsigned)n));
        free(p);
    }
    /* Huge sizes: NULL and ENOMEM. */
    errno = 0;
    CHECK(do_malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(do_malloc((size_t)PTRDIFF_MAX + 1) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(do_malloc(SIZE_MAX - 4096) == NULL && errno == ENOMEM);
    CHECK(malloc_usable_size(NULL) == 0);
}

static void test_calloc(void) {
    /* Zeroed even where freed, dirty memory is reused. */
    for (size_t n = 1; n <= (4u << 20); n = n * 3 + 1) {
        unsigned char *d = do_malloc(n);
        memset(d, 0xAB, n);
        free(d);
        unsigned char *z = do_calloc(1, n);
        CHECK(z != NULL);
        int zero = 1;
        for (size_t i = 0; i < n; i++) zero &= z[i] == 0;
        CHECK(zero);
        free(z);
    }
    void *a = do_calloc(0, 10), *b = do_calloc(10, 0);
    CHECK(a && b);
    free(a);
    free(b);
    errno = 0;
    CHECK(do_calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(do_calloc((size_t)1 << 33, (size_t)1 << 33) == NULL && errno == ENOMEM);
}

static void test_realloc(void) {
    /* realloc(NULL, n) allocates; realloc(p, 0) frees and returns NULL. */
    unsigned char *p = do_realloc(NULL, 10);
    CHECK(p != NULL);
    CHECK(do_realloc(p, 0) == NULL);
    /* Growth through every class, into the large path and out again, and
     * shrinking back: contents kept each step. */
    size_t n = 1;
    p = do_malloc(n);
    fill(p, n, 7);
    while (n < (8u << 20)) {
        size_t m = n + 1 + n / 3;
        p = do_realloc(p, m);
        CHECK(p != NULL && (uintptr_t)p % 16 == 0);
        CHECK(intact(p, n, 7));
        fill(p, m, 7);
        n = m;
    }
    while (n > 1) {
        size_t m = n / 2 + n / 7;
        p = do_realloc(p, m);
        CHECK(p != NULL);
        CHECK(intact(p, m, 7));
        CHECK(malloc_usable_size(p) >= m);
        n = m;
    }
    free(p);
    /* Across the large threshold (256 KiB) both ways, and large to large. */
    size_t steps[] = {100000, 300000, 200000, 10u << 20, 3u << 20, 70000, 5u << 20, 16};
    p = do_malloc(16);
    fill(p, 16, 3);
    size_t have = 16;
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        size_t m = steps[i];
        p = do_realloc(p, m);
        CHECK(p != NULL);
        CHECK(intact(p, have < m ? have : m, 3));
        fill(p, m, 3);
        have = m;
    }
    /* Failure keeps the block. */
    errno = 0;
    CHECK(do_realloc(p, SIZE_MAX) == NULL && errno == ENOMEM);
    CHECK(intact(p, have, 3));
    errno = 0;
    CHECK(do_reallocarray(p, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    CHECK(intact(p, have, 3));
    p = reallocarray(p, 1000, 8);
    CHECK(p != NULL && malloc_usable_size(p) >= 8000);
    CHECK(intact(p, have, 3));
    free(p);
}

static int is_aligned(void *p, size_t a) { return p && (uintptr_t)p % a == 0; }

static void test_alignment(void) {
    size_t sizes[] = {0, 1, 8, 100, 4096, 5000, 70000, 300000, 3u << 20};
    for (size_t a = 1; a <= 65536; a *= 2) {
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t n = sizes[i];
            size_t want = a < 16 ? 16 : a;
            void *p = NULL;
            int rc = posix_memalign(&p, a, n);
            if (a < sizeof(void *)) {
                CHECK(rc == EINVAL && p == NULL);
            } else {
                CHECK(rc == 0 && is_aligned(p, want));
                CHECK(malloc_usable_size(p) >= n);
                if (p) memset(p, 0x5A, n);
                free(p);
            }
            p = aligned_alloc(a, n);
            CHECK(is_aligned(p, want) && malloc_usable_size(p) >= n);
            if (p) memset(p, 0x5A, n);
            free_aligned_sized(p, a, n);
            p = memalign(a, n);
            CHECK(is_aligned(p, want) && malloc_usable_size(p) >= n);
            /* An aligned block grows and shrinks like any other. */
            if (p) {
                fill(p, n, 9);
                unsigned char *q = do_realloc(p, n * 2 + 1);
                CHECK(q && intact(q, n, 9));
                free(q);
            }
        }
    }
    /* Bad alignments. */
    void *p = (void *)1;
    CHECK(posix_memalign(&p, 24, 10) == EINVAL && p == (void *)1);
    CHECK(posix_memalign(&p, 0, 10) == EINVAL && p == (void *)1);
    CHECK(posix_memalign(&p, 4, 10) == EINVAL);
    CHECK(posix_memalign(&p, 64, SIZE_MAX - 100) == ENOMEM && p == (void *)1);
    errno = 0;
    CHECK(aligned_alloc(24, 10) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(aligned_alloc(0, 10) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(memalign(SIZE_MAX / 2 + 2, 10) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(do_memalign(64, SIZE_MAX - 10) == NULL && errno == ENOMEM);
    /* memalign rounds up a non-power of two. */
    p = memalign(48, 10);
    CHECK(is_aligned(p, 64));
    free(p);
    /* valloc and pvalloc: page aligned; pvalloc rounds the size to pages. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    p = valloc(10);
    CHECK(is_aligned(p, page));
    free(p);
    p = pvalloc(page + 1);
    CHECK(is_aligned(p, page) && malloc_usable_size(p) >= 2 * page);
    free(p);
    p = pvalloc(0);
    CHECK(is_aligned(p, page));
    free(p);
    errno = 0;
    CHECK(pvalloc(SIZE_MAX - 10) == NULL && errno == ENOMEM);
}

static void test_sized_frees_and_trim(void) {
    for (size_t n = 1; n < 1000000; n = n * 5 + 3) {
        void *p = do_malloc(n);
        CHECK(p != NULL);
        free_sized(p, n);
        p = aligned_alloc(256, n);
        CHECK(is_aligned(p, 256));
        free_aligned_sized(p, 256, n);
    }
    free_sized(NULL, 0);
    /* malloc_trim gives memory back once there is something to give. */
    void *big[64];
    for (int i = 0; i < 64; i++) big[i] = do_malloc(100000);
    for (int i = 0; i < 64; i++) free(big[i]);
    int r = malloc_trim(0);
    CHECK(r == 0 || r == 1);
    void *p = do_malloc(100);
    CHECK(p != NULL);
    free(p);
}

/* Memory that is not ours (here: a fresh mapping, as the dynamic linker's early
 * blocks are) is never written through by free/realloc, and is answered 0. */
static void test_foreign_pointers(void) {
    unsigned char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    memset(m, 0x77, 1 << 16);
    do_free(m + 64);
    do_free(m);
    CHECK(malloc_usable_size(m) == 0);
    errno = 0;
    CHECK(do_realloc(m, 100) == NULL && errno == ENOMEM);
    int same = 1;
    for (int i = 0; i < 1 << 16; i++) same &= m[i] == 0x77;
    CHECK(same);
    static char report[1 << 16];
    CHECK(stats_text(report, sizeof report) > 0);
    const char *f = strstr(report, "foreign frees ");
    long n = f ? strtol(f + 14, NULL, 10) : -1;
    CHECK(n >= 2);
    munmap(m, 1 << 16);
}

/* libc and the dynamic linker allocate through us: strings, stdio, dlopen of a
 * library with thread-local storage (libstdc++) and a call that touches it. */
static void test_libc_users(void) {
    char *s = strdup("rustydb");
    CHECK(s && strcmp(s, "rustydb") == 0);
    free(s);
    char *t = NULL;
    CHECK(asprintf(&t, "%s-%d", "x", 42) > 0 && strcmp(t, "x-42") == 0);
    free(t);
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL);
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    while (f && getline(&line, &cap, f) > 0) lines++;
    CHECK(lines > 5);
    free(line);
    if (f) fclose(f);
    void *h = dlopen("libstdc++.so.6", RTLD_NOW);
    if (h) {
        void *(*globals)(void) = (void *(*)(void))dlsym(h, "__cxa_get_globals");
        CHECK(globals != NULL && globals() != NULL);
        CHECK(dlclose(h) == 0);
    }
}

int main(void) {
    test_ours_is_in_use();
    test_malloc_and_free();
    test_calloc();
    test_realloc();
    test_alignment();
    test_sized_frees_and_trim();
    test_foreign_pointers();
    test_libc_users();
    if (failures) {
        fprintf(stderr, "abi: %d checks failed\n", failures);
        return 1;
    }
    printf("abi: all checks passed\n");
    return 0;
}
