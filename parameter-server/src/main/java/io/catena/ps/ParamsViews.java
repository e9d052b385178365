package io.catena.ps;

import io.catena.model.Params;
import java.nio.ByteBuffer;
import org.agrona.concurrent.UnsafeBuffer;

/** Agrona views over ND4J parameter buffers (server and client). */
final class ParamsViews {
    private ParamsViews() {
    }

    /** An UnsafeBuffer over {@code p}'s floats (its direct ByteBuffer; the view does not keep ND4J's memory alive). */
    static UnsafeBuffer view(Params p) {
        ByteBuffer bb = p.flat().data().asNio();
        return new UnsafeBuffer(bb, 0, (int) (p.layout().size() * 4));
    }
}
