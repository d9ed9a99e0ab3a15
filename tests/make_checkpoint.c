/* make_checkpoint.c: writes a training checkpoint in the layout `cartoongan train` uses
 * (G.<name> tensors for every generator tensor, plus D and Adam tensors, and __metadata__
 * "model": "cartoongan-checkpoint", "step") from a generator .safetensors file, with
 * st_save, so that tests/test_export_cli.sh can test `cartoongan export --checkpoint-dir`
 * without running a training. The extra tensors are small dummies: export must skip them
 * whatever they hold. Compiled by that script against the built library.
 *
 * usage: make_checkpoint G.safetensors DEST.safetensors STEP [MODEL]
 *   MODEL: the metadata's "model" (default cartoongan-checkpoint) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/generator.h"
#include "model/safetensors.h"

#define NUM_EXTRA 4

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: make_checkpoint G.safetensors DEST.safetensors STEP [MODEL]\n");
        return 2;
    }
    const char *model = argc == 5 ? argv[4] : "cartoongan-checkpoint";
    static const tensor_info extra[NUM_EXTRA] = {
        {"G.adam_m.conv01_1.weight", 1, {7}},      /* not G's shape: must not be read */
        {"G.adam_v.conv01_1.weight", 1, {7}},
        {"D.conv_1.weight", 4, {32, 3, 3, 3}},
        {"D.adam_m.conv_1.weight", 4, {32, 3, 3, 3}},
    };
    size_t n_extra = 0;
    for (int i = 0; i < NUM_EXTRA; i++) n_extra += tensor_info_count(&extra[i]);

    tensor_info specs[GEN_NUM_TENSORS + NUM_EXTRA];
    static char names[GEN_NUM_TENSORS][80];
    for (int i = 0; i < GEN_NUM_TENSORS; i++) {
        specs[i] = gen_tensors[i];
        snprintf(names[i], sizeof names[i], "G.%s", gen_tensors[i].name);
        specs[i].name = names[i];
    }
    for (int i = 0; i < NUM_EXTRA; i++) specs[GEN_NUM_TENSORS + i] = extra[i];

    float *data = malloc(((size_t)GEN_NUM_PARAMS + n_extra) * sizeof(float));
    if (!data) {
        fprintf(stderr, "make_checkpoint: out of memory\n");
        return 1;
    }
    if (st_load(argv[1], gen_tensors, GEN_NUM_TENSORS, data, 0, 0, "a generator") != CG_OK) {
        fprintf(stderr, "make_checkpoint: %s\n", cg_last_error());
        free(data);
        return 1;
    }
    for (size_t i = 0; i < n_extra; i++) data[GEN_NUM_PARAMS + i] = 0.5f;
    char meta[256];
    snprintf(meta, sizeof meta, "\"model\":\"%s\",\"step\":\"%s\",\"g_adam_t\":\"%s\"", model,
             argv[3], argv[3]);
    cg_status s = st_save(argv[2], specs, GEN_NUM_TENSORS + NUM_EXTRA, data, 0, meta);
    free(data);
    if (s != CG_OK) {
        fprintf(stderr, "make_checkpoint: %s\n", cg_last_error());
        return 1;
    }
    return 0;
}
