package io.catena.ps;

/**
 * How pushes become versions. BSP: version t+1 is published when all W workers pushed step t+1
 * (their gradients averaged). SSP(s): the same averaging per step, but workers may push up to s
 * steps ahead of the last published version (a worker about to compute step k needs version >= k-1-s).
 * ASP: every push is applied at once as its own optimizer step; staleness is measured, not bounded.
 */
public record SyncPolicy(Mode mode, int bound) {
    public enum Mode { BSP, SSP, ASP }

    public SyncPolicy {
        if (mode == Mode.SSP && bound < 1) {
            throw new IllegalArgumentException("ssp needs a staleness bound >= 1 (ssp:1, ssp:2, ...), got " + bound);
        }
        if (mode == Mode.BSP) {
            bound = 0;
        }
    }

    public static SyncPolicy bsp() {
        return new SyncPolicy(Mode.BSP, 0);
    }

    public static SyncPolicy ssp(int bound) {
        return new SyncPolicy(Mode.SSP, bound);
    }

    public static SyncPolicy asp() {
        return new SyncPolicy(Mode.ASP, 0);
    }

    /** Parses bsp, ssp:S or asp. */
    public static SyncPolicy parse(String s) {
        String v = s.trim().toLowerCase();
        if (v.equals("bsp")) {
            return bsp();
        }
        if (v.equals("asp")) {
            return asp();
        }
        if (v.startsWith("ssp:")) {
            try {
                return ssp(Integer.parseInt(v.substring(4)));
            } catch (NumberFormatException e) {
                // fall through
            }
        }
        throw new IllegalArgumentException("sync mode must be bsp, ssp:S (S >= 1) or asp, got '" + s + "'");
    }

    /** Oldest version a worker may compute step {@code step} on. */
    public long minVersionFor(long step) {
        return mode == Mode.ASP ? 0 : Math.max(0, step - 1 - bound);
    }

    @Override
    public String toString() {
        return switch (mode) {
            case BSP -> "bsp";
            case ASP -> "asp";
            case SSP -> "ssp:" + bound;
        };
    }
}
