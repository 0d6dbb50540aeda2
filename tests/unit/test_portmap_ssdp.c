/* ctest: labels=loopback */
/*
 * test_portmap_ssdp: the UPnP SSDP search (src/portmap/pm_ssdp.c): reading
 * an answer's LOCATION, and a search against a gateway played by this test
 * on 127.0.0.1:1900 that answers the unicast M-SEARCH: the search ends at
 * that answer (not after a fixed wait), a URL the caller refuses is not
 * the end, and a silent gateway ends the search at its deadline. The real
 * gateway (miniupnpd) is in the lab: tests/lab/test_portmap.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "tu.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "portmap/pm_internal.h"

#define SSDP_TEST_PORT 1900 /* where pm_ssdp_search sends its unicast search */
#define WAIT_MS 5000        /* bound on the fake gateway's thread */
#define SILENT_MS 300       /* deadline of the search nobody answers */

static const char ANSWER[] =
    "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n"
    "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
    "USN: uuid:x::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
    "EXT:\r\nlocation:  http://127.0.0.1:5000/rootDesc.xml \r\n\r\n";

static void test_location(void **state) {
  (void)state;
  char url[PM_UPNP_URL_MAX];
  assert_int_equal(pm_ssdp_location((const uint8_t *)ANSWER, strlen(ANSWER),
                                    url, sizeof(url)),
                   QP_OK);
  assert_string_equal(url, "http://127.0.0.1:5000/rootDesc.xml");
  static const char *const bad[] = {
      "HTTP/1.1 404 Not Found\r\nLOCATION: http://a/\r\n\r\n",
      "HTTP/1.1 200 OK\r\nST: x\r\n\r\n",                 /* no LOCATION */
      "HTTP/1.1 200 OK\r\nLOCATION: file:///etc/x\r\n\r\n", /* not http */
      "HTTP/1.1 200 OK\r\nLOCATION:\r\n\r\n",
      "M-SEARCH * HTTP/1.1\r\nLOCATION: http://a/\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(pm_ssdp_location((const uint8_t *)bad[i], strlen(bad[i]),
                                      url, sizeof(url)),
                     QP_ERR_PROTOCOL);
  /* A URL longer than the buffer is refused, not cut. */
  assert_int_equal(pm_ssdp_location((const uint8_t *)ANSWER, strlen(ANSWER),
                                    url, 10),
                   QP_ERR_PROTOCOL);
}

typedef struct fake_igd {
  udp_socket_t sock;
  atomic_int answers; /* how many searches to answer */
  int searches;
  char first[1024];
  pthread_t thread;
} fake_igd_t;

static void *igd_main(void *arg) {
  fake_igd_t *g = arg;
  int64_t until = clock_now_ms() + WAIT_MS;
  while (atomic_load(&g->answers) > 0 && clock_now_ms() < until) {
    struct pollfd pfd = {.fd = g->sock.fd, .events = POLLIN};
    if (poll(&pfd, 1, 50) <= 0)
      continue;
    uint8_t buf[1024];
    size_t len;
    udp_addr_t from;
    if (udp_recv_one(&g->sock, buf, sizeof(buf) - 1, &len, &from) != 1)
      continue;
    buf[len] = '\0';
    if (g->searches++ == 0)
      snprintf(g->first, sizeof(g->first), "%s", (char *)buf);
    udp_send(&g->sock, &from, (const uint8_t *)ANSWER, strlen(ANSWER), 0);
    atomic_fetch_sub(&g->answers, 1);
  }
  return NULL;
}

/* The fake gateway on 127.0.0.1:1900; false (test skipped) when the port
 * is taken on this machine. */
static bool igd_start(fake_igd_t *g, int answers) {
  memset(g, 0, sizeof(*g));
  udp_addr_t at;
  udp_addr_from_ip("127.0.0.1", SSDP_TEST_PORT, &at);
  if (udp_socket_open(&at, &g->sock) != QP_OK)
    return false;
  atomic_store(&g->answers, answers);
  pthread_create(&g->thread, NULL, igd_main, g);
  return true;
}

static void igd_stop(fake_igd_t *g) {
  atomic_store(&g->answers, 0);
  pthread_join(g->thread, NULL);
  udp_socket_close(&g->sock);
}

typedef struct accept_log {
  int calls;
  bool verdict;
  char url[PM_UPNP_URL_MAX];
} accept_log_t;

static bool log_accept(const char *url, void *ctx) {
  accept_log_t *l = ctx;
  l->calls++;
  snprintf(l->url, sizeof(l->url), "%s", url);
  return l->verdict;
}

static void job_on_loopback(pm_job_t *job) {
  memset(job, 0, sizeof(*job));
  udp_addr_from_ip("127.0.0.1", PM_SERVER_PORT, &job->gateway);
  udp_addr_from_ip("127.0.0.1", 40000, &job->internal);
  atomic_init(&job->stopping, false);
}

static void test_search_ends_at_answer(void **state) {
  (void)state;
  fake_igd_t g;
  if (!igd_start(&g, 1))
    skip();
  pm_job_t job;
  job_on_loopback(&job);
  accept_log_t l = {.verdict = true};
  int64_t t0 = clock_now_ms();
  int rc = pm_ssdp_search(&job, t0 + 2000, log_accept, &l);
  int64_t took = clock_now_ms() - t0;
  igd_stop(&g);
  assert_int_equal(rc, QP_OK);
  assert_int_equal(l.calls, 1);
  assert_string_equal(l.url, "http://127.0.0.1:5000/rootDesc.xml");
  /* The unicast search names the gateway and the IGD type, carries no MX. */
  assert_non_null(strstr(g.first, "M-SEARCH * HTTP/1.1\r\n"));
  assert_non_null(strstr(g.first, "HOST: 127.0.0.1:1900\r\n"));
  assert_non_null(strstr(g.first, "ST: " PM_UPNP_IGD_TYPE "\r\n"));
  assert_null(strstr(g.first, "MX:"));
  /* Not libminiupnpc's fixed 1 s window: the answer ends it. */
  assert_true(took < 1000);
}

static void test_refused_url_then_deadline(void **state) {
  (void)state;
  fake_igd_t g;
  if (!igd_start(&g, 3)) /* answers every resend with the same URL */
    skip();
  pm_job_t job;
  job_on_loopback(&job);
  accept_log_t l = {.verdict = false};
  int64_t t0 = clock_now_ms();
  int rc = pm_ssdp_search(&job, t0 + SILENT_MS, log_accept, &l);
  int64_t took = clock_now_ms() - t0;
  igd_stop(&g);
  assert_int_equal(rc, QP_ERR_TIMEOUT);
  assert_int_equal(l.calls, 1); /* one URL is tried once */
  assert_true(took >= SILENT_MS);
  assert_true(took < SILENT_MS + 1000);
}

static void test_stop_ends_search(void **state) {
  (void)state;
  pm_job_t job;
  job_on_loopback(&job);
  atomic_store(&job.stopping, true);
  accept_log_t l = {.verdict = true};
  int64_t t0 = clock_now_ms();
  int rc = pm_ssdp_search(&job, t0 + 2000, log_accept, &l);
  assert_int_equal(rc, QP_ERR_TIMEOUT);
  assert_int_equal(l.calls, 0);
  assert_true(clock_now_ms() - t0 < 1000);
}

/* Nothing listens on the gateway's port 1900: its ICMP port unreachable
 * ends the search at once instead of at the deadline (a gateway without
 * UPnP costs gathering nothing). */
static void test_closed_port_ends_search(void **state) {
  (void)state;
  fake_igd_t g;
  if (!igd_start(&g, 0)) /* only to learn that 127.0.0.1:1900 is free */
    skip();
  igd_stop(&g);
  pm_job_t job;
  job_on_loopback(&job);
  accept_log_t l = {.verdict = true};
  int64_t t0 = clock_now_ms();
  int rc = pm_ssdp_search(&job, t0 + 2000, log_accept, &l);
  assert_int_equal(rc, QP_ERR_NOT_SUPPORTED);
  assert_non_null(strstr(qp_last_error(), "ICMP port unreachable"));
  assert_int_equal(l.calls, 0);
  assert_true(clock_now_ms() - t0 < 500);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_location),
      cmocka_unit_test(test_search_ends_at_answer),
      cmocka_unit_test(test_refused_url_then_deadline),
      cmocka_unit_test(test_stop_ends_search),
      cmocka_unit_test(test_closed_port_ends_search),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
