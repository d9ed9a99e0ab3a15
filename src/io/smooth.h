/* smooth.h: the CartoonGAN paper's edge-promoting step (section 3.3: cartoon images with
 * their sharp edges blurred, the "smoothed" set the discriminator learns to reject), as
 * the seed project's scripts/smooth.py does it with OpenCV and numpy, rewritten so the
 * product needs no OpenCV. Every function gives the same bytes as its OpenCV counterpart
 * (tests/test_smooth.c checks them pixel for pixel against tools/make_smooth_fixtures.py):
 *
 *   gray  = cv2.cvtColor(img, COLOR_RGB2GRAY)
 *   edges = cv2.Canny(gray, 100, 200)                  3x3 Sobel, L1 magnitude
 *   mask  = cv2.dilate(edges, np.ones((5, 5)))
 *   out   = img, except where mask != 0: the 5x5 Gaussian [1 4 6 4 1]^T [1 4 6 4 1] / 256
 *           of img padded by 2 with np.pad(mode='reflect'), truncated to 8 bits
 *
 * One deliberate difference: smooth.py reads its gray image with cv2.imread(f, 0), which
 * leaves the conversion to each decoder (libjpeg's Y channel, libpng's rgb_to_gray), so
 * its result depends on the file format; here the gray is always cvtColor's from the
 * decoded RGB. On the seed's 256x256 cartoons that changes 0.13% of the output pixels. */
#ifndef CG_IO_SMOOTH_H
#define CG_IO_SMOOTH_H

#include <stddef.h>
#include <stdint.h>

#include "cartoongan.h"

/* smooth.py's Canny thresholds. */
#define CG_SMOOTH_CANNY_LOW 100
#define CG_SMOOTH_CANNY_HIGH 200

/* Packed RGB8 to gray, rounded as OpenCV 4's cvtColor(RGB2GRAY):
 * (9798 R + 19235 G + 3735 B + 16384) >> 15. */
void cg_rgb_to_gray(uint8_t *gray, const uint8_t *rgb, size_t npixels);

/* cv2.Canny(gray, low, high) with its defaults (3x3 Sobel with replicated borders, L1
 * gradient magnitude |dx| + |dy|): edges (w*h bytes) gets 255 on edge pixels, else 0. A
 * pixel is an edge candidate when its magnitude is > low and it is a maximum along the
 * gradient's direction (one of four, split at 22.5 degrees); candidates > high are edges,
 * and so are candidates 8-connected to an edge (hysteresis). low > high are swapped, as
 * OpenCV does. CG_ERR_ARG for a null pointer or a size < 1, CG_ERR_NOMEM. */
cg_status cg_canny(uint8_t *edges, const uint8_t *gray, int w, int h, int low, int high);

/* The whole step on a packed RGB8 image of any size (w, h >= 1): out_rgb (w*h*3, not
 * overlapping in_rgb) gets the smoothed image. When edges_out is not NULL it also gets
 * the Canny edge map (w*h bytes, 0 or 255). Allocates about 4 bytes a pixel of scratch,
 * plus 8 per edge pixel. CG_ERR_ARG, CG_ERR_NOMEM; out_rgb is untouched on failure. */
cg_status cg_edge_smooth(uint8_t *out_rgb, const uint8_t *in_rgb, int w, int h,
                         uint8_t *edges_out);

#endif
