/*
 * rustydb_memory.h — RustyAlloc (rustydb-memory) as the C malloc family.
 *
 * Link with `pkg-config --cflags --libs rustydb-malloc` (that is,
 * -lrustydb_malloc), or load the library into any program with
 *     LD_PRELOAD=/path/to/librustydb_malloc.so program
 *
 * Either way it replaces the standard functions for the whole process, glibc's
 * own internal calls included, so they keep their usual declarations from
 * <stdlib.h> and <malloc.h>:
 *
 *   malloc, free, calloc, realloc, reallocarray, posix_memalign, aligned_alloc,
 *   memalign, valloc, pvalloc, malloc_usable_size, malloc_trim,
 *   free_sized, free_aligned_sized (C23)
 *
 * Behaviour is glibc 2.38's: 16-byte minimum alignment; malloc(0) returns a
 * distinct minimal block; realloc(p, 0) frees p and returns NULL;
 * realloc(NULL, n) is malloc(n); ENOMEM on exhaustion or sizes above
 * PTRDIFF_MAX; EINVAL for alignments that are not powers of two
 * (aligned_alloc) or not power-of-two multiples of sizeof(void *)
 * (posix_memalign, which returns the code instead of setting errno);
 * memalign rounds other alignments up. free and malloc_usable_size ignore
 * pointers the library never handed out (malloc_usable_size returns 0), and
 * realloc refuses them with ENOMEM. mallopt, mallinfo2 and malloc_stats are
 * glibc's and describe glibc's own (unused) heap.
 */
#ifndef RUSTYDB_MEMORY_H
#define RUSTYDB_MEMORY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Writes the allocator's statistics (bytes in use, cached and mapped; segments,
 * thread caches, purges; the large-object path; one line per size class in
 * use) to the file descriptor fd (2 for standard error). It allocates nothing,
 * so it may be called anywhere. Returns 0, or -1 with errno set.
 */
int rustydb_malloc_stats_print(int fd);

/*
 * C23's sized frees, which glibc 2.36 does not declare. The size and alignment
 * are accepted and not needed: each block's size class is found from its
 * address.
 */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* RUSTYDB_MEMORY_H */
