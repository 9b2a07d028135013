package org.tensorflow.lite;

/** Compile-only stand-in for LiteRT's {@code DataType} (see {@link Interpreter}). */
public enum DataType {
    FLOAT32, INT32, UINT8, INT64, STRING, BOOL, INT16, INT8
}
