/* libvirt-calls: what libvirt's own client costs for the per-domain calls the compute
 * agent makes each cycle when the bulk read lacks them (libvirt's test driver gives
 * only state.*): virDomainGetInfo, and for a running domain virDomainMemoryStats,
 * block statistics per disk and interface statistics per vNIC; block sizes
 * (virDomainGetBlockInfo) per disk of every domain. THREADS threads share the
 * domains on one connection, BATCH domains at a time, as the agent's lanes do
 * (host/src/hypervisor/lanes.rs); `kept` keeps the threads from one batch to the
 * next, otherwise they are started for each batch. Prints the calls and the
 * process's CPU seconds (getrusage) for three rounds.
 *
 *   cc -O2 scripts/libvirt-calls.c -o /tmp/libvirt-calls -lvirt -lpthread
 *   cargo run -p pollen-testkit --bin pollen-testnode -- 10000 /tmp/node-10000.xml
 *   /tmp/libvirt-calls test+unix:///tmp/node-10000.xml 8 100 kept
 */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>

#define MAX_DOMAINS 100000
#define MAX_DEVICES 4

static virDomainPtr *doms;
static int ndoms, nthreads, batch_start, batch_len;
static long calls[64];
static char disks[MAX_DOMAINS][MAX_DEVICES][16], nics[MAX_DOMAINS][MAX_DEVICES][16];
static int ndisk[MAX_DOMAINS], nnic[MAX_DOMAINS];
static pthread_barrier_t barrier;

static void ignore_error(void *data, virErrorPtr error) { (void)data; (void)error; }

/* One thread's share of the current batch. */
static void *lane(void *arg) {
    long t = (long)arg;
    int per = (batch_len + nthreads - 1) / nthreads;
    int end = batch_start + batch_len;
    for (int i = batch_start + t * per; i < end && i < batch_start + (t + 1) * per; i++) {
        virDomainInfo info;
        virDomainMemoryStatStruct mem[16];
        virDomainGetInfo(doms[i], &info);
        calls[t]++;
        int active = info.state == VIR_DOMAIN_RUNNING || info.state == VIR_DOMAIN_PAUSED ||
                     info.state == VIR_DOMAIN_BLOCKED;
        if (active) {
            virDomainMemoryStats(doms[i], mem, 16, 0);
            calls[t]++;
        }
        for (int d = 0; d < ndisk[i]; d++) {
            virDomainBlockStatsStruct stats;
            virDomainBlockInfo sizes;
            if (active) {
                virDomainBlockStats(doms[i], disks[i][d], &stats, sizeof stats);
                calls[t]++;
            }
            virDomainGetBlockInfo(doms[i], disks[i][d], &sizes, 0);
            calls[t]++;
        }
        for (int n = 0; active && n < nnic[i]; n++) {
            virDomainInterfaceStatsStruct stats;
            virDomainInterfaceStats(doms[i], nics[i][n], &stats, sizeof stats);
            calls[t]++;
        }
    }
    return NULL;
}

/* A kept thread: one share of each batch, between two barriers, until none is left. */
static void *kept_lane(void *arg) {
    for (;;) {
        pthread_barrier_wait(&barrier);
        if (batch_start >= ndoms) return NULL;
        lane(arg);
        pthread_barrier_wait(&barrier);
    }
}

static double cpu(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s URI THREADS BATCH [kept]\n", argv[0]);
        return 2;
    }
    virSetErrorFunc(NULL, ignore_error);
    virConnectPtr connection = virConnectOpen(argv[1]);
    if (!connection) return 1;
    nthreads = atoi(argv[2]);
    int batch = atoi(argv[3]), kept = argc > 4 && strcmp(argv[4], "kept") == 0;
    if (nthreads < 1 || nthreads > 64 || batch < 1) return 2;
    ndoms = virConnectListAllDomains(connection, &doms, 0);
    if (ndoms < 0 || ndoms > MAX_DOMAINS) return 1;
    /* Each domain's disks and vNICs, from its XML once (the agent keeps them), by the
     * generated node's target names: vd* disks, tap* vNICs. */
    for (int i = 0; i < ndoms; i++) {
        char *xml = virDomainGetXMLDesc(doms[i], 0);
        for (char *p = xml; p && (p = strstr(p, "<target dev='")); p++) {
            char name[16] = {0};
            sscanf(p + 13, "%15[^']", name);
            if (name[0] == 'v' && ndisk[i] < MAX_DEVICES) strcpy(disks[i][ndisk[i]++], name);
            if (name[0] == 't' && nnic[i] < MAX_DEVICES) strcpy(nics[i][nnic[i]++], name);
        }
        free(xml);
    }
    for (int round = 0; round < 3; round++) {
        struct timeval w0, w1;
        gettimeofday(&w0, 0);
        double c0 = cpu();
        memset(calls, 0, sizeof calls);
        pthread_t threads[64];
        if (kept) {
            pthread_barrier_init(&barrier, 0, nthreads + 1);
            batch_start = 0;
            batch_len = ndoms < batch ? ndoms : batch;
            for (long t = 0; t < nthreads; t++) pthread_create(&threads[t], 0, kept_lane, (void *)t);
            for (;;) {
                pthread_barrier_wait(&barrier);
                if (batch_start >= ndoms) break;
                pthread_barrier_wait(&barrier);
                batch_start += batch;
                batch_len = ndoms - batch_start < batch ? ndoms - batch_start : batch;
            }
            for (int t = 0; t < nthreads; t++) pthread_join(threads[t], 0);
            pthread_barrier_destroy(&barrier);
        } else {
            for (batch_start = 0; batch_start < ndoms; batch_start += batch) {
                batch_len = ndoms - batch_start < batch ? ndoms - batch_start : batch;
                for (long t = 0; t < nthreads; t++) pthread_create(&threads[t], 0, lane, (void *)t);
                for (int t = 0; t < nthreads; t++) pthread_join(threads[t], 0);
            }
        }
        gettimeofday(&w1, 0);
        long total = 0;
        for (int t = 0; t < nthreads; t++) total += calls[t];
        double used = cpu() - c0;
        printf("%d domains, %d threads %s, batches of %d: %ld calls, %.3f CPU s, %.2f s wall, %.1f us CPU a call\n",
               ndoms, nthreads, kept ? "kept" : "started per batch", batch, total, used,
               (w1.tv_sec - w0.tv_sec) + (w1.tv_usec - w0.tv_usec) / 1e6, used / total * 1e6);
    }
    virConnectClose(connection);
    return 0;
}
