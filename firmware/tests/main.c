/* main.c - runs every suite; exit status 0 only if every check passed. */
#include <stdio.h>
#include "testlib.h"

void suite_framing(void);
void suite_dsp(void);
void suite_fxs(void);
void suite_fxo(void);
void suite_protocol(void);
void suite_busytone(void);

int main(void)
{
    suite_framing();
    suite_dsp();
    suite_fxs();
    suite_fxo();
    suite_protocol();
    suite_busytone();
    printf("%d tests, %d checks, %d failures\n", tl_tests, tl_checks, tl_failures);
    return tl_failures ? 1 : 0;
}
