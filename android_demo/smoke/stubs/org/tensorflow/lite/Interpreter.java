package org.tensorflow.lite;

import java.nio.ByteBuffer;

/**
 * Compile-only stand-in for LiteRT's {@code org.tensorflow.lite.Interpreter}, with just the
 * members the demo Activity calls. scripts/android_smoke.sh compiles against it offline and
 * keeps it out of the APK; the Gradle build uses the real class from
 * {@code com.google.ai.edge.litert:litert}.
 */
public final class Interpreter implements AutoCloseable {
    public Interpreter(ByteBuffer model) {
        throw new UnsupportedOperationException("compile-only stub");
    }

    public Tensor getInputTensor(int index) {
        throw new UnsupportedOperationException("compile-only stub");
    }

    public Tensor getOutputTensor(int index) {
        throw new UnsupportedOperationException("compile-only stub");
    }

    public void run(Object input, Object output) {
        throw new UnsupportedOperationException("compile-only stub");
    }

    @Override
    public void close() {}
}
