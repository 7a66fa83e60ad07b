/* mlx-rs seeds its random-number generator with macOS's mach_approximate_time. Linux has no
 * such symbol, so this provides it from the monotonic clock (nanoseconds, like on Apple
 * Silicon where the mach timebase is 1/1). */
#include <stdint.h>
#include <time.h>

uint64_t mach_approximate_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
