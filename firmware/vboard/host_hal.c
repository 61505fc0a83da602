/* host_hal.c - the virtual board's port of hal.h. */
#include "host_hal.h"
#include "linesim.h"
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

vb_hal_t vb;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void vb_hal_init(int pty_fd)
{
    memset(&vb, 0, sizeof vb);
    vb.pty_fd = pty_fd;
    vb.t0_ms = mono_ms();
    vb.kinds[0] = HAL_PORT_FXS;
    vb.kinds[1] = HAL_PORT_FXO;
}

void vb_hal_flush(void)
{
    while (vb.tx_len > 0) {
        ssize_t n = write(vb.pty_fd, vb.tx, (size_t)vb.tx_len);
        if (n <= 0)
            return;                            /* EAGAIN: the host is not reading */
        memmove(vb.tx, vb.tx + n, (size_t)(vb.tx_len - n));
        vb.tx_len -= (int)n;
    }
}

uint8_t hal_port_count(void) { return VB_PORTS; }
uint8_t hal_port_kind(uint8_t port) { return vb.kinds[port]; }
const char *hal_serial_number(void) { return "VB0001"; }
uint32_t hal_millis(void) { return (uint32_t)(mono_ms() - vb.t0_ms); }

int hal_serial_read(uint8_t *buf, int max)
{
    ssize_t n = read(vb.pty_fd, buf, (size_t)max);
    return n > 0 ? (int)n : 0;                 /* EAGAIN / EIO: nothing */
}

bool hal_serial_write(const uint8_t *buf, int len)
{
    if (vb.tx_len + len > VB_TXBUF)
        return false;
    memcpy(vb.tx + vb.tx_len, buf, (size_t)len);
    vb.tx_len += len;
    return true;
}

void hal_slic_ring(uint8_t port, bool on)
{
    if (vb.slic_ring[port] != on)
        linesim_report("ringing %u %s", port, on ? "on" : "off");
    vb.slic_ring[port] = on;
}
bool hal_slic_offhook(uint8_t port) { return vb.slic_offhook[port]; }
void hal_slic_polarity(uint8_t port, bool reversed) { (void)port; (void)reversed; }
bool hal_daa_ring(uint8_t port) { return vb.daa_ring[port]; }
bool hal_daa_polarity(uint8_t port) { return vb.daa_pol[port]; }

void hal_daa_offhook(uint8_t port, bool closed)
{
    if (vb.daa_relay[port] != closed)
        linesim_report("%s %u", closed ? "offhook" : "onhook", port);
    vb.daa_relay[port] = closed;
}

int16_t hal_line_measure(uint8_t port)
{
    if (vb.line_forced[port])
        return vb.line_value[port];
    if (vb.kinds[port] == HAL_PORT_FXS)
        return vb.slic_offhook[port] ? 250 : 0;      /* 25 mA loop current */
    int16_t v = vb.daa_relay[port] ? 90 : 480;     /* 9 V seized, 48 V idle */
    return vb.daa_pol[port] ? (int16_t)-v : v;
}
uint8_t hal_line_alarms(uint8_t port) { return vb.alarms[port]; }

bool hal_codec_read(uint8_t port, uint8_t ulaw[HAL_FRAME_SAMPLES])
{
    if (!vb.codec_ready[port])
        return false;
    vb.codec_ready[port] = false;
    memcpy(ulaw, vb.codec_in[port], HAL_FRAME_SAMPLES);
    return true;
}

void hal_codec_write(uint8_t port, const uint8_t ulaw[HAL_FRAME_SAMPLES])
{
    linesim_played(port, ulaw);
}

void hal_watchdog_kick(void) { vb.watchdog_kicks++; }
