/* testlib.h - a tiny assertion framework for the host unit tests. */
#ifndef PLATEAU_TESTLIB_H
#define PLATEAU_TESTLIB_H
#include <stdbool.h>

extern int tl_checks, tl_failures, tl_tests;
extern const char *tl_current;

bool tl_check(bool ok, const char *expr, const char *file, int line);
bool tl_check_eq(long a, long b, const char *ea, const char *eb, const char *file, int line);

#define CHECK(c) tl_check((c), #c, __FILE__, __LINE__)
#define CHECK_EQ(a, b) tl_check_eq((long)(a), (long)(b), #a, #b, __FILE__, __LINE__)
#define RUN(fn) do { tl_current = #fn; tl_tests++; fn(); } while (0)

#endif
