package tokenprune.device;

import java.util.List;

/**
 * A kernel's name and parameter list as compiled. Every launch is checked against it, and
 * {@code KernelSignatureTest} checks it against the PTX, so a wrong argument width cannot slip
 * through to the GPU.
 */
public record KernelSpec(String name, List<ArgType> params) {
    public static KernelSpec of(String name, ArgType... params) {
        return new KernelSpec(name, List.of(params));
    }

    void check(KernelArgs args) {
        if (!args.types().equals(params)) {
            throw new IllegalArgumentException("kernel " + name + " takes " + params + " but was given " + args.types());
        }
    }
}
