/* stylize.c: the smallest program built on the installed libcartoongan: cartoonizes a
 * binary PPM (P6) image with one style's weights and writes the result as PPM.
 *
 *     cc -o stylize stylize.c $(pkg-config --cflags --libs cartoongan)
 *     cartoongan fetch-weights hayao
 *     ./stylize ~/.local/share/cartoongan/weights/hayao.safetensors photo.ppm cartoon.ppm
 *
 * (`djpeg -pnm photo.jpg >photo.ppm` and `cjpeg cartoon.ppm >cartoon.jpg`, from Debian's
 * libjpeg-turbo-progs, which tools/install_deps.sh installs, convert from and to JPEG; in
 * the source tree `python3 tests/png_ppm.py to-ppm photo.png photo.ppm` reads a PNG. The
 * library itself takes RGB8 pixels from anywhere.) */
#include <stdio.h>
#include <stdlib.h>

#include <cartoongan.h>

/* Reads "P6 W H 255" and the pixels; no comments in the header. */
static unsigned char *read_ppm(const char *path, int *w, int *h) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    int maxval;
    unsigned char *rgb = NULL;
    if (fscanf(f, "P6 %d %d %d", w, h, &maxval) == 3 && maxval == 255 && fgetc(f) != EOF &&
        *w > 0 && *h > 0 && *w <= 1 << 15 && *h <= 1 << 15) {
        size_t n = (size_t)*w * (size_t)*h * 3;
        rgb = malloc(n);
        if (rgb && fread(rgb, 1, n, f) != n) {
            free(rgb);
            rgb = NULL;
        }
    }
    fclose(f);
    return rgb;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s WEIGHTS.safetensors IN.ppm OUT.ppm\n", argv[0]);
        return 2;
    }
    int w, h;
    unsigned char *rgb = read_ppm(argv[2], &w, &h);
    if (!rgb) {
        fprintf(stderr, "%s: not a readable binary PPM (P6, maxval 255)\n", argv[2]);
        return 1;
    }
    cg_model *m;
    if (cg_model_load(&m, argv[1]) != CG_OK) {
        fprintf(stderr, "%s\n", cg_last_error());
        free(rgb);
        return 1;
    }
    /* in place: the output may be the input */
    int ok = cg_stylize(m, rgb, rgb, w, h, NULL) == CG_OK;
    if (!ok) fprintf(stderr, "%s\n", cg_last_error());
    cg_model_free(m);
    FILE *f = ok ? fopen(argv[3], "wb") : NULL;
    if (ok && (!f || fprintf(f, "P6\n%d %d\n255\n", w, h) < 0 ||
               fwrite(rgb, 1, (size_t)w * h * 3, f) != (size_t)w * h * 3)) {
        fprintf(stderr, "%s: cannot write\n", argv[3]);
        ok = 0;
    }
    if (f && fclose(f) != 0) ok = 0;
    free(rgb);
    return ok ? 0 : 1;
}
