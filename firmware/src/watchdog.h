/* watchdog.h - software watchdog in front of the hardware one: the hardware
 * timer is kicked only when every registered task has checked in, so a hung
 * task (not just a hung CPU) resets the board. */
#ifndef PLATEAU_WATCHDOG_H
#define PLATEAU_WATCHDOG_H
#include <stdbool.h>
#include <stdint.h>

enum wdt_task { WDT_TASK_LINK = 1u << 0, WDT_TASK_PORTS = 1u << 1, WDT_TASK_AUDIO = 1u << 2 };

typedef struct {
    uint32_t required;       /* task bits that must check in */
    uint32_t seen;           /* task bits seen since the last kick */
    uint32_t last_kick;
    uint32_t period_ms;      /* kick no more often than this */
    uint32_t kicks;
} wdt_t;

void wdt_init(wdt_t *w, uint32_t required, uint32_t period_ms, uint32_t now);
void wdt_checkin(wdt_t *w, uint32_t task);
/** Kick the hardware watchdog if all tasks checked in and the period passed;
 *  returns true if it kicked. */
bool wdt_service(wdt_t *w, uint32_t now);

#endif
