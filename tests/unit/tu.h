/*
 * Helpers shared by the C tests (cmocka). Included after cmocka's headers.
 */
#ifndef QP_TU_H
#define QP_TU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in milliseconds. */
int64_t tu_now_ms(void);

/* Fill buf with a deterministic pattern derived from seed. */
void tu_fill_pattern(void *buf, size_t len, uint32_t seed);

/* Returns true if a UDP/TCP port on 127.0.0.1 was free a moment ago:
 * a port obtained by binding port 0 and closing the socket. */
uint16_t tu_free_udp_port(void);

/* True when running as root with network-namespace rights. */
bool tu_have_netns_rights(void);

/* Print "SKIP: reason" and return cmocka's skip. */
#define TU_SKIP(reason)                                                        \
  do {                                                                         \
    print_message("SKIP: %s\n", reason);                                       \
    skip();                                                                    \
  } while (0)

#endif
