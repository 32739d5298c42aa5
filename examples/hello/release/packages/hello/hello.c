/* hello: reads its config (greeting=, name=), says hello once, keeps a count of its starts in
 * the persistent store, then stays up until it is told to stop. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void value(const char *config, const char *key, char *out, size_t size) {
    FILE *file = fopen(config, "r");
    char line[512];
    size_t len = strlen(key);
    out[0] = '\0';
    if (!file) return;
    while (fgets(line, sizeof line, file)) {
        if (strncmp(line, key, len) == 0 && line[len] == '=') {
            snprintf(out, size, "%s", line + len + 1);
            out[strcspn(out, "\n")] = '\0';
        }
    }
    fclose(file);
}

int main(int argc, char **argv) {
    char greeting[256], name[256];
    long starts = 0;
    if (argc < 3) {
        fprintf(stderr, "usage: hello <config> <starts file>\n");
        return 2;
    }
    value(argv[1], "greeting", greeting, sizeof greeting);
    value(argv[1], "name", name, sizeof name);
    FILE *counter = fopen(argv[2], "r");
    if (counter) {
        if (fscanf(counter, "%ld", &starts) != 1) starts = 0;
        fclose(counter);
    }
    counter = fopen(argv[2], "w");
    if (counter) {
        fprintf(counter, "%ld\n", starts + 1);
        fclose(counter);
    }
    printf("%s from %s (start %ld)\n", greeting, name, starts + 1);
    fflush(stdout);
    for (;;) pause();
}
