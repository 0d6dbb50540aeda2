/*
 * UPnP IGD client through Debian's libminiupnpc. Every call blocks (SSDP,
 * then HTTP/SOAP), which is why each protocol runs on its own thread.
 *
 * Discovery is our own SSDP search (pm_ssdp.c), which ends at the
 * gateway's first answer; libminiupnpc's upnpDiscoverDevice listens for
 * at least 1 s after it, more than the 250 ms gathering budget. The root
 * description URL found is kept for the process: the next portal fetches
 * it directly and searches only if that fails.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>

#include "common/clock.h"
#include "common/error.h"
#include "portmap/pm_internal.h"

/* How long the SSDP search goes on. A LAN gateway answers in
 * milliseconds; one that answers late still gives a (late) mapping. */
#define UPNP_SEARCH_MS 2000
/* UPnP errors handled by name (IGD:2 WANIPConnection section 2.4.16). */
#define UPNP_ERR_CONFLICT 718
#define UPNP_ERR_ONLY_PERMANENT 725

typedef struct upnp_state {
  struct UPNPUrls urls;
  struct IGDdatas data;
  bool have_urls;
  char ext_port[8]; /* the external port held, as text */
  char lease[12];   /* lease asked for, as text ("0" = permanent) */
} upnp_state_t;

/* The IGD found last, for the process (see the top of the file). */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static char cache_url[PM_UPNP_URL_MAX];

static void cache_set(const char *url) {
  pthread_mutex_lock(&cache_lock);
  snprintf(cache_url, sizeof(cache_url), "%s", url ? url : "");
  pthread_mutex_unlock(&cache_lock);
}

static bool cache_get(char *url, size_t size) {
  pthread_mutex_lock(&cache_lock);
  snprintf(url, size, "%s", cache_url);
  pthread_mutex_unlock(&cache_lock);
  return url[0] != '\0';
}

static bool from_cache(upnp_state_t *st) {
  char url[PM_UPNP_URL_MAX];
  char lan[INET_ADDRSTRLEN];
  if (!cache_get(url, sizeof(url)))
    return false;
  if (UPNP_GetIGDFromUrl(url, &st->urls, &st->data, lan, sizeof(lan)) == 1)
    return true;
  FreeUPNPUrls(&st->urls);
  cache_set(NULL);
  return false;
}

/* One URL an SSDP answer named: usable when its description is an IGD's. */
static bool accept_url(const char *url, void *ctx) {
  upnp_state_t *st = ctx;
  char lan[INET_ADDRSTRLEN];
  int r = UPNP_GetIGDFromUrl(url, &st->urls, &st->data, lan, sizeof(lan));
  if (r == 1)
    return true;
  FreeUPNPUrls(&st->urls);
  memset(&st->urls, 0, sizeof(st->urls));
  return false;
}

static int discover(pm_job_t *job, upnp_state_t *st, const char *gw) {
  int64_t start = clock_now_ms();
  int rc = pm_ssdp_search(job, start + UPNP_SEARCH_MS, accept_url, st);
  if (rc == QP_ERR_TIMEOUT)
    return err_fail(QP_ERR_NOT_SUPPORTED,
                    "UPnP: no Internet Gateway Device answered SSDP in "
                        "%lld ms (gateway %s)",
                    (long long)(clock_now_ms() - start), gw);
  if (rc != QP_OK)
    return rc;
  cache_set(st->urls.rootdescURL);
  return QP_OK;
}

static int add_mapping(pm_job_t *job, upnp_state_t *st, const char *in_port,
                       const char *client) {
  const char *ctl = st->urls.controlURL;
  const char *svc = st->data.first.servicetype;
  int r = UPNP_AddPortMapping(ctl, svc, st->ext_port, in_port, client,
                              PORTMAP_DESCRIPTION, "UDP", NULL, st->lease);
  if (r == UPNP_ERR_ONLY_PERMANENT) {
    /* IGD:1 routers often accept only permanent leases: we delete it on
     * close instead. */
    snprintf(st->lease, sizeof(st->lease), "0");
    r = UPNP_AddPortMapping(ctl, svc, st->ext_port, in_port, client,
                            PORTMAP_DESCRIPTION, "UDP", NULL, st->lease);
  }
  if (r == UPNP_ERR_CONFLICT && !job->granted_s) {
    /* Our port is taken on the gateway: IGD:2 picks a free one. */
    char reserved[8] = "";
    r = UPNP_AddAnyPortMapping(ctl, svc, st->ext_port, in_port, client,
                               PORTMAP_DESCRIPTION, "UDP", NULL, st->lease,
                               reserved);
    if (r == UPNPCOMMAND_SUCCESS)
      snprintf(st->ext_port, sizeof(st->ext_port), "%s", reserved);
  }
  if (r != UPNPCOMMAND_SUCCESS)
    return err_fail(QP_ERR_NOT_SUPPORTED,
                    "UPnP: the gateway (%s) refused to map UDP port %s to "
                    "%s:%s: %s (%d)",
                    ctl, st->ext_port, client, in_port, strupnperror(r), r);
  return QP_OK;
}

static int upnp_map(pm_job_t *job, int64_t deadline_ms) {
  (void)deadline_ms; /* libminiupnpc takes no deadline: see the top */
  char gw[UDP_ADDRSTRLEN];
  udp_addr_to_string(&job->gateway, gw, sizeof(gw));
  upnp_state_t *st = job->priv;
  if (!st) {
    st = calloc(1, sizeof(*st));
    if (!st)
      return err_fail(QP_ERR_NOMEM, "UPnP: out of memory");
    job->priv = st;
    snprintf(st->ext_port, sizeof(st->ext_port), "%u",
             udp_addr_port(&job->internal));
    snprintf(st->lease, sizeof(st->lease), "%u", job->lifetime_s);
  }
  if (!st->have_urls) {
    if (!from_cache(st)) {
      int rc = discover(job, st, gw);
      if (rc != QP_OK)
        return rc;
    }
    st->have_urls = true;
  }
  /* Stopped while discovering (the portal closed): ask for nothing that
   * would outlive it. */
  if (atomic_load(&job->stopping))
    return err_fail(QP_ERR_INTERRUPTED, "UPnP: stopped before mapping");
  char client[INET_ADDRSTRLEN];
  char in_port[8];
  inet_ntop(AF_INET, &((struct sockaddr_in *)&job->internal.ss)->sin_addr,
            client, sizeof(client));
  snprintf(in_port, sizeof(in_port), "%u", udp_addr_port(&job->internal));
  int rc = add_mapping(job, st, in_port, client);
  if (rc != QP_OK)
    return rc;
  char ext_ip[40] = "";
  int r = UPNP_GetExternalIPAddress(st->urls.controlURL,
                                    st->data.first.servicetype, ext_ip);
  udp_addr_t ext;
  if (r != UPNPCOMMAND_SUCCESS ||
      udp_addr_from_ip(ext_ip, (uint16_t)atoi(st->ext_port), &ext) != QP_OK ||
      udp_addr_is_unspecified(&ext)) {
    rc = err_fail(QP_ERR_PROTOCOL, "UPnP: the gateway (%s) mapped port %s "
                                   "but gave no external address ('%s', %s)",
                  st->urls.controlURL, st->ext_port, ext_ip,
                  strupnperror(r));
    job->external = (udp_addr_t){0};
    return rc;
  }
  job->external = ext;
  job->granted_s = (uint32_t)strtoul(st->lease, NULL, 10);
  return QP_OK;
}

static int upnp_unmap(pm_job_t *job, int64_t deadline_ms) {
  (void)deadline_ms;
  upnp_state_t *st = job->priv;
  if (!st || !st->have_urls)
    return QP_OK;
  int r = UPNP_DeletePortMapping(st->urls.controlURL,
                                 st->data.first.servicetype, st->ext_port,
                                 "UDP", NULL);
  if (r != UPNPCOMMAND_SUCCESS)
    return err_fail(QP_ERR_NOT_SUPPORTED, "UPnP: the gateway (%s) did not "
                                          "delete UDP port %s: %s (%d)",
                    st->urls.controlURL, st->ext_port, strupnperror(r), r);
  return QP_OK;
}

static void upnp_release(pm_job_t *job) {
  upnp_state_t *st = job->priv;
  if (st && st->have_urls)
    FreeUPNPUrls(&st->urls);
  free(st);
  job->priv = NULL;
}

const pm_proto_ops_t pm_upnp_ops = {.proto = PORTMAP_UPNP,
                                    .map = upnp_map,
                                    .unmap = upnp_unmap,
                                    .release = upnp_release};
