/*
 * Constant-rate HTTP/1.1 load generator that corrects for coordinated omission (the idea of
 * wrk2, in ~250 lines of C so the client has no GC or JIT of its own).
 *
 * Request i is due at t0 + i/rate. Connection c (one thread each, keep-alive) sends the
 * requests i with i % connections == c, each no earlier than its due time; latency is taken
 * from the *due* time, so a stalled server is charged for every request it delayed, also those
 * the client could not send yet. The latency from the actual send is reported beside it.
 * A jitter thread sleeps 1 ms in a loop and records the overshoot: the machine's noise floor
 * during the same run, as this process sees it.
 *
 *   loadgen <host> <port> <rate/s> <seconds> <connections> <requests-file>
 *
 * requests-file: raw HTTP requests, each preceded by a line with its length in bytes; request
 * i uses entry i % count. Prints one JSON object on stdout. Build: gcc -O2 -pthread.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host;
static int port, conns;
static double rate, seconds;
static char **reqs;
static size_t *reqlen, nreqs;
static int64_t t0, total;
static int64_t *lat_due, *lat_sent; /* indexed by request number; -1 = failed */
static int *status_of;
static volatile int done;
static int64_t *jitter;
static size_t njitter, jcap;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until(int64_t t) {
  struct timespec ts = {.tv_sec = t / 1000000000LL, .tv_nsec = t % 1000000000LL};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

static int dial(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, host, &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { close(fd); return -1; }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Reads one response; returns its status, or -1 when the connection failed. */
static int read_response(int fd, char *buf, size_t cap) {
  size_t have = 0;
  char *end = NULL;
  while (!end) {
    ssize_t n = read(fd, buf + have, cap - 1 - have);
    if (n <= 0) return -1;
    have += (size_t)n;
    buf[have] = 0;
    end = strstr(buf, "\r\n\r\n");
    if (!end && have >= cap - 1) return -1;
  }
  int status = atoi(buf + 9);
  size_t body = 0;
  for (char *p = buf; p < end; p++) {
    if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) { body = strtoul(p + 15, NULL, 10); break; }
  }
  size_t want = (size_t)(end + 4 - buf) + body;
  while (have < want) {
    size_t chunk = want - have < cap ? want - have : cap;
    ssize_t n = read(fd, buf, chunk); /* the body's bytes are not needed, only their end */
    if (n <= 0) return -1;
    have += (size_t)n;
  }
  return status;
}

static void *conn_thread(void *arg) {
  int c = (int)(intptr_t)arg;
  size_t cap = 1 << 20;
  char *buf = malloc(cap);
  int fd = dial();
  for (int64_t i = c; i < total; i += conns) {
    int64_t due = t0 + (int64_t)((double)i * 1e9 / rate);
    if (now_ns() < due) sleep_until(due);
    int64_t sent = now_ns();
    const char *r = reqs[i % nreqs];
    size_t len = reqlen[i % nreqs], off = 0;
    int st = -1;
    if (fd < 0) fd = dial();
    while (fd >= 0 && off < len) {
      ssize_t n = write(fd, r + off, len - off);
      if (n <= 0) break;
      off += (size_t)n;
    }
    if (fd >= 0 && off == len) st = read_response(fd, buf, cap);
    int64_t end = now_ns();
    status_of[i] = st;
    lat_due[i] = end - due;
    lat_sent[i] = end - sent;
    if (st < 0 && fd >= 0) { close(fd); fd = -1; }
  }
  if (fd >= 0) close(fd);
  free(buf);
  return NULL;
}

static void *jitter_thread(void *arg) {
  (void)arg;
  while (!done && njitter < jcap) {
    int64_t a = now_ns();
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    jitter[njitter++] = now_ns() - a - 1000000;
  }
  return NULL;
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void print_pcts(const char *name, int64_t *xs, size_t n) {
  qsort(xs, n, sizeof *xs, cmp);
  static const double ps[] = {50, 90, 99, 99.9, 100};
  static const char *names[] = {"p50", "p90", "p99", "p999", "max"};
  printf("\"%s\":{\"n\":%zu", name, n);
  for (int k = 0; k < 5; k++) {
    size_t idx = n ? (size_t)((ps[k] / 100.0) * (double)n) : 0;
    if (idx >= n) idx = n ? n - 1 : 0;
    printf(",\"%s\":%.3f", names[k], n ? (double)xs[idx] / 1e6 : 0.0);
  }
  printf("}");
}

int main(int argc, char **argv) {
  if (argc != 7) { fprintf(stderr, "usage: loadgen host port rate seconds connections requests-file\n"); return 2; }
  host = argv[1]; port = atoi(argv[2]); rate = atof(argv[3]); seconds = atof(argv[4]); conns = atoi(argv[5]);
  FILE *f = fopen(argv[6], "rb");
  if (!f) { perror(argv[6]); return 2; }
  size_t cap = 16;
  reqs = malloc(cap * sizeof *reqs); reqlen = malloc(cap * sizeof *reqlen);
  size_t len;
  while (fscanf(f, "%zu\n", &len) == 1) {
    if (nreqs == cap) { cap *= 2; reqs = realloc(reqs, cap * sizeof *reqs); reqlen = realloc(reqlen, cap * sizeof *reqlen); }
    reqs[nreqs] = malloc(len);
    if (fread(reqs[nreqs], 1, len, f) != len) { fprintf(stderr, "short request file\n"); return 2; }
    reqlen[nreqs++] = len;
  }
  fclose(f);
  total = (int64_t)(rate * seconds);
  lat_due = calloc((size_t)total, sizeof *lat_due); lat_sent = calloc((size_t)total, sizeof *lat_sent);
  status_of = calloc((size_t)total, sizeof *status_of);
  jcap = (size_t)(seconds * 1000) + 1000; jitter = malloc(jcap * sizeof *jitter);
  pthread_t *th = malloc((size_t)conns * sizeof *th), jt;
  t0 = now_ns() + 20000000; /* 20 ms for the threads to start */
  pthread_create(&jt, NULL, jitter_thread, NULL);
  for (int c = 0; c < conns; c++) pthread_create(&th[c], NULL, conn_thread, (void *)(intptr_t)c);
  for (int c = 0; c < conns; c++) pthread_join(th[c], NULL);
  double elapsed = (double)(now_ns() - t0) / 1e9;
  done = 1;
  pthread_join(jt, NULL);
  size_t ok = 0, failed = 0, s503 = 0, s504 = 0, other = 0;
  int64_t *okd = malloc((size_t)total * sizeof *okd), *oks = malloc((size_t)total * sizeof *oks);
  for (int64_t i = 0; i < total; i++) {
    if (status_of[i] == 200) { okd[ok] = lat_due[i]; oks[ok++] = lat_sent[i]; }
    else if (status_of[i] < 0) failed++;
    else if (status_of[i] == 503) s503++;
    else if (status_of[i] == 504) s504++;
    else other++;
  }
  printf("{\"sent\":%lld,\"ok\":%zu,\"failed\":%zu,\"s503\":%zu,\"s504\":%zu,\"other\":%zu,\"seconds\":%.3f,\"rate\":%.1f,", (long long)total, ok, failed, s503, s504, other, elapsed, (double)ok / elapsed);
  print_pcts("latency", okd, ok); printf(",");
  print_pcts("service", oks, ok); printf(",");
  print_pcts("jitter", jitter, njitter); printf("}\n");
  return 0;
}
