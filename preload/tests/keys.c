/* Preloaded before librustydb_malloc in one test run: its constructor takes 40
 * pthread keys first, so the allocator's exit-hook key is a second-level one
 * (>= 32), whose first pthread_setspecific in each thread calls calloc. */
#include <pthread.h>

__attribute__((constructor)) static void take_keys(void) {
    pthread_key_t k;
    for (int i = 0; i < 40; i++) pthread_key_create(&k, 0);
}
