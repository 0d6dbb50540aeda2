/*
 * examples/echo.c: the README's C quick start as a program.
 *   echo server PORT          listen, echo every message until the peer closes
 *   echo client HOST PORT MSG send MSG, print the echo
 * Build: cc echo.c $(pkg-config --cflags --libs quicportal) -o echo
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <quic_portal.h>

static int fail(const char *what) {
  fprintf(stderr, "%s: %s\n", what, qp_last_error());
  return 1;
}

static int serve(qp_portal_t *p, int port) {
  if (qp_portal_listen(p, "0.0.0.0", (uint16_t)port, NULL, 30000) != QP_OK)
    return fail("listen");
  for (;;) {
    void *msg;
    size_t len;
    int rc = qp_portal_recv(p, &msg, &len, -1);
    if (rc == QP_ERR_CLOSED)
      return 0;
    if (rc != QP_OK)
      return fail("recv");
    rc = qp_portal_send(p, msg, len, -1);
    qp_free(msg);
    if (rc != QP_OK)
      return fail("send");
  }
}

static int ask(qp_portal_t *p, const char *host, int port, const char *text) {
  if (qp_portal_connect(p, host, (uint16_t)port, 0, NULL, 5000) != QP_OK)
    return fail("connect");
  if (qp_portal_send(p, text, strlen(text), -1) != QP_OK)
    return fail("send");
  void *msg;
  size_t len;
  if (qp_portal_recv(p, &msg, &len, 5000) != QP_OK)
    return fail("recv");
  printf("%.*s\n", (int)len, (const char *)msg);
  qp_free(msg);
  return qp_portal_close(p, -1) == QP_OK ? 0 : fail("close");
}

int main(int argc, char **argv) {
  qp_portal_t *p;
  if (qp_portal_create(&p) != QP_OK)
    return fail("create");
  int rc = 2;
  if (argc == 3 && strcmp(argv[1], "server") == 0)
    rc = serve(p, atoi(argv[2]));
  else if (argc == 5 && strcmp(argv[1], "client") == 0)
    rc = ask(p, argv[2], atoi(argv[3]), argv[4]);
  else
    fprintf(stderr, "usage: echo server PORT | echo client HOST PORT MESSAGE\n");
  qp_portal_destroy(p);
  return rc;
}
