/* vboard.c - the virtual line board: the firmware of src/ on a pty, with a
 * simulated phone on port 0 (FXS) and carrier line on port 1 (FXO).
 *
 * stdout: first line "PTY /dev/pts/N", then one report per line.
 * stdin:  one control command per line (README.md "Virtual board").
 * Ends on "quit", end of stdin, SIGINT or SIGTERM. */
#include "board.h"
#include "host_hal.h"
#include "linesim.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

board_t vb_board;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* Open a pty pair; the slave is kept open (raw) so the master never sees
 * EIO/HUP while no host has it open, and echo never loops frames back. */
static int open_pty(int *slave_fd, char *name, size_t cap)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0)
        return -1;
    const char *path = ptsname(m);
    if (!path)
        return -1;
    snprintf(name, cap, "%s", path);
    int s = open(path, O_RDWR | O_NOCTTY);
    if (s < 0)
        return -1;
    struct termios t;
    if (tcgetattr(s, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(s, TCSANOW, &t);
    }
    fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_NONBLOCK);
    *slave_fd = s;
    return m;
}

int main(void)
{
    char name[128], line[512];
    int slave = -1, line_len = 0;
    int master = open_pty(&slave, name, sizeof name);
    if (master < 0) {
        perror("vboard: pty");
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("PTY %s\n", name);
    fflush(stdout);

    vb_hal_init(master);
    linesim_init();
    board_init(&vb_board);
    uint32_t audio_clock = hal_millis() + 20;
    bool stdin_open = true;

    while (!stop_signal && !linesim_quit()) {
        struct pollfd fds[2] = {{.fd = master, .events = POLLIN | (vb.tx_len ? POLLOUT : 0)},
                                {.fd = stdin_open ? 0 : -1, .events = POLLIN}};
        if (poll(fds, 2, 1) < 0 && errno != EINTR)
            break;
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(0, line + line_len, sizeof line - 1 - (size_t)line_len);
            if (n <= 0) {
                stdin_open = false;
                break;                         /* the controller went away */
            }
            line_len += (int)n;
            line[line_len] = 0;
            char *nl;
            while ((nl = strchr(line, '\n')) != NULL) {
                *nl = 0;
                linesim_command(line, hal_millis());
                line_len -= (int)(nl + 1 - line);
                memmove(line, nl + 1, (size_t)line_len + 1);
            }
            if (line_len == (int)sizeof line - 1)
                line_len = 0;                  /* overlong line: dropped */
        }
        uint32_t now = hal_millis();
        linesim_tick(now);
        /* The codec clock: one frame per port per 20 ms, catching up if late. */
        while ((int32_t)(now - audio_clock) >= 0) {
            for (uint8_t p = 0; p < VB_PORTS; p++) {
                linesim_capture(p, audio_clock, vb.codec_in[p]);
                vb.codec_ready[p] = true;
            }
            audio_clock += 20;
            board_poll(&vb_board);
        }
        board_poll(&vb_board);
        vb_hal_flush();
    }
    vb_hal_flush();
    close(slave);
    close(master);
    return 0;
}
