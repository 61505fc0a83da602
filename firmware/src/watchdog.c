/* watchdog.c - task check-in watchdog over hal_watchdog_kick(). */
#include "watchdog.h"
#include "hal.h"

void wdt_init(wdt_t *w, uint32_t required, uint32_t period_ms, uint32_t now)
{
    w->required = required;
    w->seen = 0;
    w->last_kick = now;
    w->period_ms = period_ms;
    w->kicks = 0;
}

void wdt_checkin(wdt_t *w, uint32_t task)
{
    w->seen |= task;
}

bool wdt_service(wdt_t *w, uint32_t now)
{
    if ((w->seen & w->required) != w->required || (uint32_t)(now - w->last_kick) < w->period_ms)
        return false;
    hal_watchdog_kick();
    w->seen = 0;
    w->last_kick = now;
    w->kicks++;
    return true;
}
