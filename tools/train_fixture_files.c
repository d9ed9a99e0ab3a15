/* train_fixture_files.c: writes the training tests' deterministic stand-ins for the large
 * files (doc/training-engine.md, "Parity fixtures"): a VGG19 as torchvision .safetensors
 * and as Keras .h5, and a discriminator, from tests/train_fixtures.h. The CLI tests and
 * anyone trying `cartoongan train` without real VGG19 weights can use them:
 *
 *     build/tools/train_fixture_files VGG.safetensors [VGG.h5 [D.safetensors]] */
#include <stdio.h>

#include "train_fixtures.h"

int main(int argc, char **argv) {
    int bad = argc < 2 || argc > 4;
    for (int i = 1; i < argc; i++) bad |= argv[i][0] == '-'; /* --help, or a typo: not a file to write */
    if (bad) {
        fprintf(stderr, "usage: train_fixture_files VGG.safetensors [VGG.h5 [D.safetensors]]\n");
        return 2;
    }
    if (write_vgg_safetensors(argv[1]) || (argc > 2 && write_vgg_h5(argv[2])) || (argc > 3 && write_d_safetensors(argv[3]))) {
        fprintf(stderr, "train_fixture_files: %s\n", cg_last_error());
        return 1;
    }
    return 0;
}
