/* cli.h: what the cartoongan command's source files share: the subcommands' entry points
 * and the small option-parsing helpers they all use, so every command reads
 * "--flag value" / "--flag=value" and reports usage errors the same way. */
#ifndef CG_CLI_H
#define CG_CLI_H

#include <stddef.h>

/* Subcommands: argv[0] is the command's name ("cartoonize"); each returns the process's
 * exit status (0 ok, 1 failure, 2 usage error). */
int cmd_cartoonize(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_smooth(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_fetch_weights(int argc, char **argv);

/* Parses cartoonize's arguments as cmd_cartoonize would, then frees them: -1 when they are
 * valid (the command would run), else the exit status (help or a usage error). Reads no
 * image and writes nothing; used by the fuzz target for the option parser. */
int cli_cartoonize_parse(int argc, char **argv);

/* ---- weights.c: where a style's weights are looked up (see the comment there) ---- */

#define CLI_MAX_WEIGHTS_PLACES 3
/* The folders a style is looked up in, in order: only `weights_dir` when not NULL
 * (--weights-dir), else only $CARTOONGAN_WEIGHTS when set, else the default places (an
 * uninstalled build: the checkout's weights/, then the user's folder; an installed one:
 * the user's folder, then PREFIX/share/cartoongan/weights). Returns how many. */
int cli_weights_places(const char *weights_dir, const char *places[CLI_MAX_WEIGHTS_PLACES]);
/* Whether the folder was named outright (--weights-dir or $CARTOONGAN_WEIGHTS). */
int cli_weights_explicit(const char *weights_dir);
/* Where `fetch-weights` and `export --checkpoint-dir` write by default: $CARTOONGAN_WEIGHTS,
 * else the first default place; NULL when no home folder can be found. */
const char *cli_user_weights_dir(void);
/* Whether dir holds the style: dir/style.safetensors (a file) or dir/style/ (a folder). */
int cli_style_in_dir(const char *dir, const char *style);
/* The first place (above) holding the style, or NULL. */
const char *cli_find_style(const char *weights_dir, const char *style);
/* Prints the two lines for a style found nowhere: the places looked in, then a hint with
 * the command that fetches it. */
void cli_report_missing_style(const char *weights_dir, const char *style);
/* Prints the "weights:" paragraph of a command's --help (the places, in order). */
void cli_print_weights_help(void);
/* PREFIX/share/cartoongan for the installed command (make install), NULL for build/cartoongan. */
const char *cli_installed_data_dir(void);

/* The built-in styles, the ones `cartoongan fetch-weights` knows how to download: the four
 * released full ones (cg_style_names' order), then light_shinkai and light_paprika. */
#define CLI_NUM_FETCHABLE 6
extern const char *const cli_fetchable_styles[CLI_NUM_FETCHABLE];
int cli_style_fetchable(const char *style);

/* Loads `style` from the first place holding it (<dir>/<style>.safetensors, else the .npy
 * directory <dir>/<style>/; weights_dir as for cli_weights_places) and sets its thread
 * count. `one_image`: the caller stylizes a single image with it, so it is loaded to
 * transform its weights at use (model_load_at_use). Returns 0, or -1 after printing a
 * one-line error (with a hint when the weights are missing). */
struct cg_model;
int cli_load_style(const char *weights_dir, const char *style, int threads, int one_image, struct cg_model **out);

/* ---- strings.c: small helpers; out of memory prints one line and exits with status 1 ---- */

typedef struct {
    char **v;
    int n, cap;
} str_list;

void *cli_xcheck(void *p); /* p, or exit */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
char *cli_printf(const char *fmt, ...);                  /* a new string, never NULL */
char *cli_path_join(const char *dir, const char *name); /* "dir" + "name" with one '/' between */
void cli_list_push(str_list *l, char *s);               /* takes s */
void cli_list_free(str_list *l);
int cli_cmp_str(const void *a, const void *b);          /* qsort of char * */
const char *cli_errno_text(int e);                      /* strerror, ENOENT in lower case */

/* ---- styles.c: the style names of --styles (cartoonize), --style (bench) and --name
 * (export) ---- */

#define CLI_STYLE_NAME_MAX 64 /* a custom style's name: a file name and an output folder */
/* A custom style's name: 1 to CLI_STYLE_NAME_MAX letters, digits, '_' or '-'. */
int cli_style_name_valid(const char *p, size_t n);
/* One of the four released full styles (what --all-styles applies). */
int cli_style_is_released(const char *name);
/* One of the six built-in styles (cli_fetchable_styles), spelt as there. */
int cli_style_is_builtin(const char *name);
/* Adds comma-separated names (spaces around them ignored; a built-in name in any case,
 * stored as cli_fetchable_styles spells it); -1 after a usage error of command cmd. */
int cli_styles_add(const char *cmd, char styles[][CLI_STYLE_NAME_MAX + 1], int *nstyles,
                   const char *list);
/* Every custom style must have weights in a place styles are looked up in; -1 after a
 * usage error of command cmd that names the styles there are. */
int cli_styles_check_custom(const char *cmd, char styles[][CLI_STYLE_NAME_MAX + 1], int nstyles,
                            const char *weights_dir);

/* Catches SIGINT and SIGTERM with `handler` (which sets a flag the work loop polls); a
 * second ^C kills at once. */
void cli_catch_interrupts(void (*handler)(int));

/* Exit statuses shared by every command. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* Prints "cartoongan CMD: MESSAGE" and "try 'cartoongan CMD --help'" on stderr and returns
 * CLI_EXIT_USAGE, so a parser can `return cli_usage_error(...)`. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int cli_usage_error(const char *cmd, const char *fmt, ...);

/* Whether argv[*i] is the option `name` ("--max-height") given as "--max-height V" or
 * "--max-height=V". Returns 0 when it is not; 1 when it is, with *value set and *i moved
 * past the value; -1 (after a usage message) when the value is missing. */
int cli_opt_value(const char *cmd, int argc, char **argv, int *i, const char *name,
                  const char **value);

/* Whether argv[i] is the flag `name`; a flag given a value ("--overwrite=1") is reported as
 * a usage error and returns -1. */
int cli_opt_flag(const char *cmd, char **argv, int i, const char *name);

/* Parses a whole decimal int in [min, max]; 0 on success, -1 (after a usage message naming
 * the option) otherwise. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, int min, int max,
                  int *out);

#endif
