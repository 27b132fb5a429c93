/* Resident memory: dropping the startup pages (see weir_release_clean_file_pages in CWeirLinux.h). */
#include "CWeirLinux.h"
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <malloc.h>

int weir_malloc_trim(void) { return malloc_trim(0); }

long weir_release_clean_file_pages(void) {
    FILE *f = fopen("/proc/self/smaps", "re");
    if (!f) return -1;
    enum { MAX_RANGES = 256 };
    unsigned long starts[MAX_RANGES], ends[MAX_RANGES];
    long sizes[MAX_RANGES];
    int writable[MAX_RANGES];
    int n = 0;
    char line[512];
    unsigned long start = 0, end = 0, inode = 0;
    char perms[8] = "";
    long rss = 0, anonymous = -1;
    int have = 0;
    for (;;) {
        char *got = fgets(line, sizeof line, f);
        unsigned long s, e, off, ino;
        char p[8], dev[16];
        int header = got && sscanf(line, "%lx-%lx %7s %lx %15s %lu", &s, &e, p, &off, dev, &ino) == 6;
        if ((header || !got) && have) {
            /* Backed by a file. Read-only without private copies: dropped outright (the kernel reads them back).
               Writable (data): only paged out, which never discards a page another thread may have written. */
            if (inode != 0 && rss > 0 && n < MAX_RANGES && (perms[1] != '-' || anonymous == 0)) {
                starts[n] = start; ends[n] = end; sizes[n] = rss - (anonymous > 0 ? anonymous : 0);
                writable[n] = perms[1] != '-'; n++;
            }
            have = 0;
        }
        if (!got) break;
        if (header) {
            start = s; end = e; inode = ino; memcpy(perms, p, sizeof perms); rss = 0; anonymous = -1; have = 1;
        } else if (have) {
            long v;
            if (sscanf(line, "Rss: %ld kB", &v) == 1) rss = v;
            else if (sscanf(line, "Anonymous: %ld kB", &v) == 1) anonymous = v;
        }
    }
    fclose(f);
    long released = 0;
    for (int i = 0; i < n; i++) {
        void *addr = (void *)starts[i];
        size_t len = ends[i] - starts[i];
        if (madvise(addr, len, writable[i] ? MADV_PAGEOUT : MADV_DONTNEED) == 0) released += sizes[i];
    }
    return released;
}
