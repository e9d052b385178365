package io.catena.ps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import java.nio.file.Path;
import java.util.List;
import java.util.Properties;
import org.junit.jupiter.api.Test;

/**
 * The server keeps no optimizer defaults of its own: its AdamW settings and LR schedule are the recipe's (with the
 * same overrides the trainer gets), so an external server cannot drift from the trainer's schedule.
 */
class RecipeSettingsTest {

    private static ParameterServer.Context context(Properties p, Path dir) {
        ParameterServer.Context ctx = PsTestSupport.configure(new ParameterServer.Context(p), dir, 1, SyncPolicy.bsp());
        return ctx.adamW(null).schedule(null).initialState(null);
    }

    @Test
    void optimizerAndScheduleComeFromTheRecipeAndItsOverrides() {
        Properties p = new Properties();
        p.setProperty(Configuration.RECIPE_PROP, "builtin:tiny");
        p.setProperty(Configuration.RECIPE_SET_PROP, "lr=0.02; steps=77 ;weight_decay=0.3");
        ParameterServer.Context ctx = context(p, PsTestSupport.testDir("recipe-settings")).conclude();
        TrainSettings expected = Recipe.resolve("builtin:tiny").with(List.of("lr=0.02", "steps=77", "weight_decay=0.3")).trainSettings();
        assertEquals(expected.schedule(), ctx.schedule);
        assertEquals(expected.adamW(), ctx.adamW);
        assertEquals(0.02, ctx.schedule.peakLr());
        assertEquals(77, ctx.schedule.totalSteps());
    }

    @Test
    void withoutARecipeTheServerRefusesInsteadOfUsingDefaultsOfItsOwn() {
        ParameterServer.Context ctx = context(new Properties(), PsTestSupport.testDir("recipe-missing"))
                .initialState(PsTestSupport.freshState(3));
        ConfigurationException e = assertThrows(ConfigurationException.class, ctx::conclude);
        assertTrue(e.getMessage().contains(Configuration.RECIPE_PROP) && e.getMessage().contains("LR schedule"), e.getMessage());
    }
}
