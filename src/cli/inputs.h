/* inputs.h: what `cartoongan cartoonize` is asked to cartoonize: the files named, the media
 * files found under the directories named (recursively, in name order), and inputs named
 * by their http(s) address, downloaded to a private temporary folder first. Each input
 * gets its kind (from its extension, or its content for a download or a .webp) and the
 * name its outputs take under each output folder. */
#ifndef CG_CLI_INPUTS_H
#define CG_CLI_INPUTS_H

#include <stdint.h>
#include <sys/types.h>

#include "cli/cli.h"
#include "cli/media.h"

/* What the search takes, for messages and --help. */
#define INPUT_TYPES ".jpg, .jpeg, .png, .webp, .heic, .heif, .avif, .gif, .mp4, .mov, .webm or .mkv"
/* The same, wrapped for --help's right column. */
#define INPUT_TYPES_WRAPPED \
    ".jpg, .jpeg, .png, .webp, .heic, .heif, .avif, .gif,\n" \
    "                        .mp4, .mov, .webm or .mkv"

typedef struct {
    char *path; /* the file read: the input, or a download's temporary copy */
    char *name; /* what messages call it: the path as given, or the URL */
    char *rel;  /* its name under each output folder (videos end in .mp4, HEIC in .jpg) */
    media_kind kind;
    dev_t dev;
    ino_t ino;
    int drop; /* a duplicate of an earlier input */
} input_file;

typedef struct {
    int ignore_gif;
    /* the output folder, when it exists, is never searched for inputs */
    int have_out_dir;
    dev_t out_dev;
    ino_t out_ino;
    /* downloads */
    uint64_t max_download_bytes;
    long connect_timeout_s, download_timeout_s;
    volatile sig_atomic_t *interrupted;
    /* reports a bad input: one line, kept for the summary */
    void (*fail)(void *user, const char *msg);
    void *user;
} input_opts;

typedef struct {
    input_file *v;
    int n, cap;
    int ignored_gifs; /* skipped for --ignore-gif */
    /* files in the folders searched whose extension is not handled, by extension */
    str_list skipped_ext;
    int *skipped_count;
    str_list urls;  /* URL arguments, fetched by inputs_download */
    char *tmp_dir;  /* where downloads go; removed by inputs_free */
} input_set;

/* Adds one INPUT argument: a file, a directory (searched), or a URL (kept for
 * inputs_download). Problems are reported through o->fail. */
void inputs_add(input_set *s, const char *arg, const input_opts *o);
/* Downloads the URLs added (each becomes an input, or a failure). */
void inputs_download(input_set *s, const input_opts *o);
/* Marks inputs whose output name clashes with an earlier one's (drop = 1): the same file
 * named twice is done once; a different file is reported. */
void inputs_drop_duplicates(input_set *s, const input_opts *o);
/* "skipped 3 files of types not handled: .tiff (2), .bmp (1)", or NULL when none. */
char *inputs_skipped_text(const input_set *s);
void inputs_free(input_set *s);

/* "a/clip.mov" -> "a/clip.mp4": `name` with its extension (if any) replaced. */
char *cli_with_ext(const char *name, const char *ext);

#endif
