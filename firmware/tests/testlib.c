/* testlib.c - check counters and failure reports. */
#include "testlib.h"
#include <stdio.h>

int tl_checks, tl_failures, tl_tests;
const char *tl_current = "";

bool tl_check(bool ok, const char *expr, const char *file, int line)
{
    tl_checks++;
    if (!ok) {
        tl_failures++;
        fprintf(stderr, "FAIL %s (%s:%d): %s\n", tl_current, file, line, expr);
    }
    return ok;
}

bool tl_check_eq(long a, long b, const char *ea, const char *eb, const char *file, int line)
{
    tl_checks++;
    if (a != b) {
        tl_failures++;
        fprintf(stderr, "FAIL %s (%s:%d): %s == %s (%ld != %ld)\n", tl_current, file, line, ea, eb, a, b);
        return false;
    }
    return true;
}
