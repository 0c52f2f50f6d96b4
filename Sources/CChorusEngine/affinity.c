// Process-wide CPU pinning: sched_setaffinity(2) applies to one thread, so every thread listed in
// /proc/self/task is pinned (new threads inherit their creator's mask).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/types.h>

#include "chorus_engine.h"

int chorus_pin_process(int cpu) {
#ifdef __linux__
    if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    DIR *tasks = opendir("/proc/self/task");
    if (!tasks) return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
    int result = 0;
    struct dirent *entry;
    while ((entry = readdir(tasks)) != NULL) {
        if (entry->d_name[0] == '.') continue;
        pid_t tid = (pid_t)atoi(entry->d_name);
        if (sched_setaffinity(tid, sizeof set, &set) != 0 && result == 0) result = errno;
    }
    closedir(tasks);
    return result;
#else
    (void)cpu;
    return 0;
#endif
}
