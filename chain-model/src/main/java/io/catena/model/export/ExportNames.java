package io.catena.model.export;

import io.catena.model.ParamLayout;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The tensor names of an export (docs/EXPORT.md) from Catena's checkpoint names (chain-model/MODEL.md). The mapping
 * is mechanical so that every export name says what MODEL.md says about its tensor: the chain suffix {@code .c{i}}
 * becomes {@code .chain.{i}}, a norm's {@code gain} becomes {@code weight} (PyTorch's name for it), the embedding gets
 * {@code .weight}, and the LM head becomes {@code lm_head.chain.{i}.weight}, transposed to PyTorch's Linear layout
 * [out = V, in = D_i] (Catena stores it [D_i, V]). Every other tensor keeps its shape and values.
 */
public final class ExportNames {
    private ExportNames() {
    }

    /** One export tensor: its name, its shape and whether its values are the Catena tensor's transpose. */
    public record Mapped(String name, int[] shape, boolean transposed) {
    }

    private static final Pattern EMBED = Pattern.compile("embed\\.c(\\d+)");
    private static final Pattern HEAD = Pattern.compile("head\\.c(\\d+)");
    private static final Pattern CHAIN_TENSOR = Pattern.compile("((?:layers\\.\\d+\\.)?[a-z_0-9.]+?)\\.c(\\d+)\\.(weight|bias|gain)");

    public static Mapped of(ParamLayout.Entry e) {
        String n = e.name();
        Matcher m = EMBED.matcher(n);
        if (m.matches()) {
            return new Mapped("embed.chain." + m.group(1) + ".weight", e.shape(), false);
        }
        m = HEAD.matcher(n);
        if (m.matches()) {
            return new Mapped("lm_head.chain." + m.group(1) + ".weight", new int[] {e.shape()[1], e.shape()[0]}, true);
        }
        m = CHAIN_TENSOR.matcher(n);
        if (m.matches()) {
            String kind = m.group(3).equals("gain") ? "weight" : m.group(3);
            return new Mapped(m.group(1) + ".chain." + m.group(2) + "." + kind, e.shape(), false);
        }
        // a new tensor kind in ParamLayout must be given an export name here (and in docs/EXPORT.md)
        throw new IllegalStateException("no export name for Catena tensor '" + n + "'; extend ExportNames and docs/EXPORT.md");
    }
}
