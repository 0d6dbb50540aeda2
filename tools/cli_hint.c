/*
 * cli_hint.c: what the other side must type. A side that waits for its
 * peer (serve --listen, and both sides of a rendezvous) prints the exact
 * command line the peer needs, as croc and magic-wormhole do: the address
 * and this side's fingerprint to pin for a direct connection, the store,
 * session, STUN servers and secret for a rendezvous, and the matching mode.
 * A serve through a store without --secret makes up the secret here.
 */
#include "cli.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HINT_MAX 4096 /* the printed command line */

/* Append " arg" to out, single-quoted for a POSIX shell when it holds
 * anything but plainly safe characters. */
static void add_arg(char *out, const char *arg) {
  static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
                             "WXYZ0123456789_./:@%+=,-[]";
  size_t n = strlen(out);
  bool plain = arg[0] != '\0' && strspn(arg, safe) == strlen(arg);
  if (n + 2 >= HINT_MAX) {
    return;
  }
  out[n++] = ' ';
  if (!plain) {
    out[n++] = '\'';
  }
  for (const char *p = arg; *p && n + 6 < HINT_MAX; p++) {
    if (*p == '\'' && !plain) {
      memcpy(out + n, "'\\''", 4); /* close, escaped quote, reopen */
      n += 4;
    } else {
      out[n++] = *p;
    }
  }
  if (!plain) {
    out[n++] = '\'';
  }
  out[n] = '\0';
}

/* An address of this machine the peer can probably reach: the --listen
 * address when it names one, else the first IPv4 address of an interface
 * that is up and not loopback, else 127.0.0.1. */
static void reachable_host(const cli_conn_cfg *cfg, char *host, size_t len) {
  const char *ip = cfg->listen_ip;
  if (ip[0] && strcmp(ip, "0.0.0.0") != 0 && strcmp(ip, "::") != 0) {
    snprintf(host, len, strchr(ip, ':') ? "[%s]" : "%s", ip);
    return;
  }
  snprintf(host, len, "127.0.0.1");
  struct ifaddrs *list = NULL;
  if (getifaddrs(&list) != 0) {
    return;
  }
  for (struct ifaddrs *i = list; i; i = i->ifa_next) {
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
        (i->ifa_flags & IFF_UP) && !(i->ifa_flags & IFF_LOOPBACK)) {
      const struct sockaddr_in *sin = (const void *)i->ifa_addr;
      inet_ntop(AF_INET, &sin->sin_addr, host, (socklen_t)len);
      break;
    }
  }
  freeifaddrs(list);
}

/* The rendezvous URL as the peer must give it: a relative dir: path made
 * absolute, so that it also works from another folder. */
static void rendezvous_for_peer(const char *url, char *out, size_t len) {
  char abs[PATH_MAX];
  if (strncmp(url, "dir:", 4) == 0 && url[4] != '/' &&
      realpath(url + 4, abs) != NULL) {
    snprintf(out, len, "dir:%s", abs);
  } else {
    snprintf(out, len, "%s", url);
  }
}

int cli_secret_generate(char *out, size_t outlen) {
  static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
  uint8_t rnd[CLI_SECRET_BITS / 8];
  if (outlen < CLI_SECRET_CODE_LEN + 1) {
    return CLI_EXIT_FAIL;
  }
  int rc = gnutls_rnd(GNUTLS_RND_KEY, rnd, sizeof rnd);
  if (rc != 0) {
    cli_errorf("cannot generate a rendezvous secret: gnutls_rnd: %s (give "
               "one with --secret, or --no-secret)",
               gnutls_strerror(rc));
    return CLI_EXIT_FAIL;
  }
  /* Five bits per character, a dash after every four characters. */
  size_t n = 0;
  for (unsigned bit = 0; bit < CLI_SECRET_BITS; bit += 5) {
    unsigned byte = bit / 8, shift = bit % 8;
    unsigned v = (unsigned)rnd[byte] << 8 |
                 (byte + 1 < sizeof rnd ? rnd[byte + 1] : 0u);
    if (bit > 0 && bit % 20 == 0) {
      out[n++] = '-';
    }
    out[n++] = b32[(v >> (11 - shift)) & 31];
  }
  out[n] = '\0';
  gnutls_memset(rnd, 0, sizeof rnd);
  return 0;
}

void cli_say_peer_command(const cli_conn_cfg *cfg, const char *fp) {
  /* A generated secret is useless unless the person sees it. */
  if (cfg->quiet && !cfg->secret_generated) {
    return;
  }
  char line[HINT_MAX];
  const char *cmd = cfg->peer_cmd ? cfg->peer_cmd
                    : cfg->server ? "quic-portal connect"
                                  : "quic-portal serve";
  snprintf(line, sizeof line, "%s", cmd);
  if (cfg->direct) {
    char host[INET6_ADDRSTRLEN + 2], to[INET6_ADDRSTRLEN + 16];
    reachable_host(cfg, host, sizeof host);
    snprintf(to, sizeof to, "%s:%u", host, (unsigned)cfg->listen_port);
    add_arg(line, "--to");
    add_arg(line, to);
    add_arg(line, "--pin");
    add_arg(line, fp);
  } else {
    char url[PATH_MAX + 8];
    rendezvous_for_peer(cfg->rendezvous, url, sizeof url);
    add_arg(line, "--rendezvous");
    add_arg(line, url);
    if (cfg->session) {
      add_arg(line, "--session");
      add_arg(line, cfg->session);
    }
    for (size_t i = 0; i < cfg->nstun; i++) {
      add_arg(line, "--stun");
      add_arg(line, cfg->stun[i]);
    }
    if (cfg->no_pin) {
      add_arg(line, "--no-pin");
    }
    if (cfg->secret) {
      add_arg(line, "--secret");
      add_arg(line, cfg->secret);
    } else if (!cfg->server) {
      /* A serve without --secret would make one up. */
      add_arg(line, "--no-secret");
    }
  }
  fprintf(stderr, "quic-portal: on the other side, run:\n  %s%s%s\n", line,
          cfg->peer_mode ? " " : "", cfg->peer_mode ? cfg->peer_mode : "");
}
