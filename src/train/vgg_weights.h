/* vgg_weights.h: loading the frozen VGG19 (up to conv4_4) that the content and style
 * losses run, from torchvision's .safetensors or Keras's .h5
 * (vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5); see doc/training-engine.md. */
#ifndef CG_TRAIN_VGG_WEIGHTS_H
#define CG_TRAIN_VGG_WEIGHTS_H

#include "cartoongan.h"

/* The 12 convolutions conv1_1 .. conv4_4, their input and output channels. */
#define VGG_LAYERS 12
extern const int vgg_cin[VGG_LAYERS], vgg_cout[VGG_LAYERS];

/* The input preprocessing the weights were trained with: torchvision's (RGB, [0, 1],
 * ImageNet mean and std) or Keras's "caffe" (BGR, [0, 255], mean subtracted). */
typedef enum { VGG_PREP_TORCH, VGG_PREP_CAFFE } vgg_prep;

typedef struct {
    float *params;                  /* one allocation: layer 0 weight [cout][cin][3][3], bias [cout], layer 1 ... */
    const float *w[VGG_LAYERS], *b[VGG_LAYERS];
    vgg_prep prep;                  /* from the format: .safetensors = torchvision, .h5 = Keras caffe */
} vgg_weights;

/* Loads path, telling the format by its content (the HDF5 signature, else safetensors):
 * safetensors keys features.{0,2,5,7,10,12,14,16,19,21,23,25}.{weight,bias} (other
 * tensors, such as the classifier, are ignored); Keras groups block1_conv1 .. block4_conv4
 * (kernels [3][3][cin][cout] transposed on load; block5 and the rest ignored). Every
 * tensor must have its exact shape, be float32 (or F16 in safetensors) and hold only
 * finite values; any failure is one line naming the file and the tensor, and leaves *v
 * empty (vgg_weights_free is then a no-op). */
cg_status vgg_weights_load(vgg_weights *v, const char *path);
void vgg_weights_free(vgg_weights *v);

#endif
