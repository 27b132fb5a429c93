#ifndef WEIR_CWEIRLINUX_H
#define WEIR_CWEIRLINUX_H
/* Linux calls Glibc hides from Swift. Compiled with _GNU_SOURCE. */
int weir_placeholder(void);
#endif
