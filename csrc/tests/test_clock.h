/* test_clock.h -- the monotonic clock in seconds, for the C tests and benchmarks (one copy). */
#ifndef FR_TEST_CLOCK_H
#define FR_TEST_CLOCK_H

#include <time.h>

static double test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
