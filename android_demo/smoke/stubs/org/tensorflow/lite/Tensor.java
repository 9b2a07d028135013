package org.tensorflow.lite;

/** Compile-only stand-in for LiteRT's {@code Tensor} (see {@link Interpreter}). */
public interface Tensor {
    DataType dataType();

    int numBytes();

    int[] shape();
}
