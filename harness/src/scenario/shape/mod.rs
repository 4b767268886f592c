//! Shapes in a scenario: a shape file (`shape = "..."`, read here and checked), its
//! import from a kubectl dump ([`import`]), its summary ([`summary`]) and synthetic
//! shapes drawn from the scenario's `[synthetic]` distributions ([`mix`]). The shape
//! types and the services built from one are the dataplane's
//! (`dataplane::floor::shape`).

use std::path::Path;

use dataplane::floor::shape::Shape;

pub mod import;
pub mod mix;
pub mod summary;

/// A shape file or dump that cannot be used: names the file or object and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: cannot write: {source}")]
    Write {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

/// Reads and checks the shape file at `path`.
pub fn load(path: &Path) -> Result<Shape, ShapeError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ShapeError::Read {
        file: file.clone(),
        source,
    })?;
    let bad = |message: String| ShapeError::File {
        file: file.clone(),
        message,
    };
    let shape: Shape = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "not a shape file ({e}); write one with `kpbench shape import` (results/README.md, \"Shape files\")"
        ))
    })?;
    shape.check().map_err(|e| bad(e.to_string()))?;
    Ok(shape)
}

/// Imports the dump at `dump` and writes its shape to `out`; the shape.
pub fn import_file(dump: &Path, out: &Path, node: Option<&str>) -> Result<Shape, ShapeError> {
    let file = dump.display().to_string();
    let text = std::fs::read_to_string(dump).map_err(|source| ShapeError::Read {
        file: file.clone(),
        source,
    })?;
    let shape = import::import(&text, node).map_err(|e| match e {
        ShapeError::Input(message) => ShapeError::File {
            file: file.clone(),
            message,
        },
        e => e,
    })?;
    shape.check().map_err(|e| ShapeError::File {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let json = serde_json::to_string_pretty(&shape).expect("a shape serializes") + "\n";
    std::fs::write(out, json).map_err(|source| ShapeError::Write {
        file: out.display().to_string(),
        source,
    })?;
    Ok(shape)
}

#[cfg(test)]
mod tests;

/// The shape fields of a scenario as written.
pub(super) struct Written {
    /// The shape file's path, resolved against the scenario's folder.
    pub shape: Option<std::path::PathBuf>,
    pub scale: Option<f64>,
    pub synthetic: Option<mix::RawSynthetic>,
    /// Whether `services` or `scales` were written.
    pub counts_given: bool,
    /// Whether `endpoints_per_service` was written, and its value.
    pub endpoints_given: bool,
    pub endpoints: usize,
}

/// The shape fields resolved, with what they change of the rest.
#[derive(Default)]
pub(super) struct Resolved {
    pub shape: Option<std::path::PathBuf>,
    pub scale: Option<f64>,
    pub synthetic: Option<mix::Synthetic>,
    pub shape_file: Option<Shape>,
    /// The service counts the shape gives (a shape file: its own count).
    pub services: Option<Vec<usize>>,
    /// The mean endpoints per service the shape gives, rounded.
    pub endpoints_per_service: Option<usize>,
}

/// Most a shape file's scale may be.
pub const MAX_SCALE: f64 = 1000.0;

/// Checks the shape fields against each other and reads the shape file;
/// `services`/`scales` are the scenario's counts (a synthetic draw is checked at the
/// largest).
pub(super) fn resolve<E>(
    w: Written,
    services: &[usize],
    scales: &std::collections::BTreeMap<String, Vec<usize>>,
    field: &impl Fn(&str, String) -> E,
) -> Result<Resolved, E> {
    let mean = |s: &Shape| (s.endpoints() as f64 / s.services().max(1) as f64).round() as usize;
    if w.scale.is_some() && w.shape.is_none() {
        return Err(field(
            "scale",
            "scales a shape file; set `shape` too, or drop `scale`".into(),
        ));
    }
    if let Some(raw) = w.synthetic {
        if w.shape.is_some() {
            return Err(field(
                "synthetic",
                "and `shape` are both set; a scenario draws its services from one of them".into(),
            ));
        }
        let mix = mix::synthetic(raw, field)?;
        let largest = services
            .iter()
            .chain(scales.values().flatten())
            .copied()
            .max()
            .unwrap_or(0);
        let drawn = mix.draw(largest);
        drawn
            .check()
            .map_err(|e| field("synthetic", format!("at {largest} services: {e}")))?;
        let endpoints = mean(&mix.draw(largest.max(1)));
        // A resolved scenario written back (the lab's) carries the mean: accept it.
        if w.endpoints_given && w.endpoints != endpoints {
            return Err(field("endpoints_per_service", "is set beside [synthetic]; the endpoint counts come from `synthetic.endpoints`, so drop it".into()));
        }
        return Ok(Resolved {
            endpoints_per_service: Some(endpoints),
            synthetic: Some(mix),
            ..Resolved::default()
        });
    }
    let Some(path) = w.shape else {
        return Ok(Resolved::default());
    };
    let scale = w.scale.unwrap_or(1.0);
    if !(scale > 0.0 && scale <= MAX_SCALE) {
        return Err(field("scale", format!("{scale} is not a scale; use a number above 0 and at most {MAX_SCALE}, e.g. 2.0 doubles every count")));
    }
    let file = load(&path).map_err(|e| field("shape", e.to_string()))?;
    let scaled = file.scaled(scale);
    if scaled.services() == 0 {
        return Err(field(
            "scale",
            format!(
                "{scale} leaves no service of {}'s {}; use a larger scale",
                path.display(),
                file.services()
            ),
        ));
    }
    scaled
        .check()
        .map_err(|e| field("scale", format!("{} at scale {scale}: {e}", path.display())))?;
    // A resolved scenario written back (the lab's) carries the shape's own counts:
    // accept those, refuse others.
    let own = vec![scaled.services() as usize];
    if (w.counts_given && (services != own.as_slice() || !scales.is_empty()))
        || (w.endpoints_given && w.endpoints != mean(&scaled))
    {
        return Err(field("shape", "is set beside `services`, `scales` or `endpoints_per_service`; a shape file gives its own counts (times `scale`), so drop those".into()));
    }
    Ok(Resolved {
        services: Some(vec![scaled.services() as usize]),
        endpoints_per_service: Some(mean(&scaled)),
        shape: Some(path),
        scale: Some(scale),
        shape_file: Some(scaled),
        ..Resolved::default()
    })
}
