/* light_params.h: the parameters of the seed project's light generator (ShuffleNet-V2
 * units, issue 13) as `cartoongan export` writes them from its TF2 checkpoint and the
 * engine loads them: 126 float32 tensors, 878,433 values, named by their object paths in
 * the checkpoint without "/.ATTRIBUTES/VARIABLE_VALUE", in TensorFlow's layouts:
 *   conv kernels [kh][kw][cin][cout] (HWIO), depthwise kernels [3][3][C][1], biases [cout],
 *   instance-norm gamma and beta [1] (one scalar each: the norm is over C, H and W).
 * The order is the network's (flat_conv1, down_conv1, down_conv2, residual_blocks 0-7,
 * up_conv1, up_conv2, final_conv; inside each, by layer, gamma before beta), which is also
 * the order of the tensors' data in the .safetensors file and in a buffer that st_load
 * fills from light_tensors. Generated once from light_shinkai_ckpt's index (paprika's has
 * the same names and shapes); tests/test_tfckpt.c checks it against both checkpoints. */
#ifndef CG_MODEL_LIGHT_PARAMS_H
#define CG_MODEL_LIGHT_PARAMS_H

#include "model/safetensors.h"

/* The value of "architecture" in the .safetensors file's __metadata__. */
#define LIGHT_ARCHITECTURE "cartoongan-light"

#define LIGHT_NUM_TENSORS 126
#define LIGHT_NUM_PARAMS 878433
extern const tensor_info light_tensors[LIGHT_NUM_TENSORS];

#endif
