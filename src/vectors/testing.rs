//! Shared checks for [`VectorStore`] implementations: one behavioural suite ([`conformance`])
//! that every backend must pass, and a generator of clustered vectors ([`clustered_vectors`])
//! with the low intrinsic dimension of real text embeddings, for recall and latency checks.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::{VectorError, VectorHit, VectorPoint, VectorStore};

/// Score tolerance: backends store f32 and may normalise in a different order.
const EPSILON: f32 = 1e-4;

fn point(n: u128, vector: &[f32]) -> VectorPoint {
    VectorPoint {
        id: Uuid::from_u128(n),
        vector: vector.to_vec(),
    }
}

fn ids(hits: &[VectorHit]) -> Vec<Uuid> {
    hits.iter().map(|h| h.id).collect()
}

fn score_of(hits: &[VectorHit], id: Uuid) -> f32 {
    hits.iter()
        .find(|h| h.id == id)
        .unwrap_or_else(|| panic!("{id} missing from {hits:?}"))
        .score
}

fn assert_close(actual: f32, expected: f32, what: &str) {
    assert!(
        (actual - expected).abs() < EPSILON,
        "{what}: score {actual}, expected {expected}"
    );
}

/// Runs the behaviour every [`VectorStore`] must show against `store`. Collections it uses are
/// named `conformance-*-<random>` and dropped at the end, so a shared server can be used.
pub async fn conformance(store: Arc<dyn VectorStore>) {
    let tag = Uuid::new_v4().simple().to_string();
    let a = format!("conformance-a-{}", &tag[..12]);
    let b = format!("conformance-b-{}", &tag[..12]);
    let s = store.as_ref();

    // A collection that does not exist.
    assert_eq!(s.count(&a).await.expect("count missing"), 0);
    assert!(matches!(
        s.search(&a, &[1.0; 4], 3).await,
        Err(VectorError::MissingCollection(_))
    ));
    assert!(matches!(
        s.upsert(&a, vec![point(1, &[1.0; 4])]).await,
        Err(VectorError::MissingCollection(_))
    ));
    assert!(matches!(
        s.optimize(&a).await,
        Err(VectorError::MissingCollection(_))
    ));
    s.delete(&a, &[Uuid::from_u128(1)])
        .await
        .expect("delete from a missing collection");
    s.drop_collection(&a)
        .await
        .expect("drop a missing collection");

    // Bad names never reach the backend.
    for bad in ["", "Upper", "../escape", "a/b"] {
        assert!(
            matches!(
                s.ensure_collection(bad, 4).await,
                Err(VectorError::Invalid(_))
            ),
            "{bad:?}"
        );
    }

    // Creation is idempotent; other dimensions are refused.
    s.ensure_collection(&a, 4).await.expect("create");
    s.ensure_collection(&a, 4).await.expect("create again");
    assert!(matches!(
        s.ensure_collection(&a, 5).await,
        Err(VectorError::Invalid(_))
    ));
    assert_eq!(s.count(&a).await.expect("count empty"), 0);
    assert!(s
        .search(&a, &[1.0, 0.0, 0.0, 0.0], 5)
        .await
        .expect("search empty")
        .is_empty());

    let (x, y, xy, minus_x) = (1, 2, 3, 4);
    s.upsert(
        &a,
        vec![
            point(x, &[1.0, 0.0, 0.0, 0.0]),
            point(y, &[0.0, 1.0, 0.0, 0.0]),
            point(xy, &[1.0, 1.0, 0.0, 0.0]),
            point(minus_x, &[-1.0, 0.0, 0.0, 0.0]),
        ],
    )
    .await
    .expect("upsert");
    s.upsert(&a, Vec::new()).await.expect("empty upsert");
    assert_eq!(s.count(&a).await.expect("count"), 4);

    // Cosine, best first: the length of the query does not matter.
    let hits = s
        .search(&a, &[2.0, 0.0, 0.0, 0.0], 10)
        .await
        .expect("search");
    let uuid = |n: u128| Uuid::from_u128(n);
    assert_eq!(
        ids(&hits),
        vec![uuid(x), uuid(xy), uuid(y), uuid(minus_x)],
        "{hits:?}"
    );
    assert_close(hits[0].score, 1.0, "identical direction");
    assert_close(hits[1].score, std::f32::consts::FRAC_1_SQRT_2, "45 degrees");
    assert_close(hits[2].score, 0.0, "orthogonal");
    assert_close(hits[3].score, -1.0, "opposite");
    let top2 = s
        .search(&a, &[1.0, 0.0, 0.0, 0.0], 2)
        .await
        .expect("search limit 2");
    assert_eq!(ids(&top2), vec![uuid(x), uuid(xy)]);

    // Upsert replaces the vector of an existing id.
    s.upsert(&a, vec![point(y, &[0.0, 0.0, 1.0, 0.0])])
        .await
        .expect("replace");
    assert_eq!(s.count(&a).await.expect("count after replace"), 4);
    let hits = s
        .search(&a, &[0.0, 1.0, 0.0, 0.0], 10)
        .await
        .expect("search after replace");
    assert_eq!(hits[0].id, uuid(xy), "{hits:?}");
    assert_close(score_of(&hits, uuid(y)), 0.0, "replaced vector");
    let hits = s
        .search(&a, &[0.0, 0.0, 1.0, 0.0], 1)
        .await
        .expect("search replaced");
    assert_eq!(ids(&hits), vec![uuid(y)]);
    assert_close(hits[0].score, 1.0, "replaced vector, own direction");

    // Wrong dimensions are refused, and a refused batch writes nothing.
    let bad_batch = vec![
        point(10, &[1.0, 0.0, 0.0, 0.0]),
        point(11, &[1.0, 0.0, 0.0]),
    ];
    assert!(matches!(
        s.upsert(&a, bad_batch).await,
        Err(VectorError::Invalid(_))
    ));
    assert_eq!(s.count(&a).await.expect("count after refused batch"), 4);
    assert!(matches!(
        s.search(&a, &[1.0; 5], 3).await,
        Err(VectorError::Invalid(_))
    ));
    assert!(matches!(
        s.search(&a, &[1.0; 3], 3).await,
        Err(VectorError::Invalid(_))
    ));

    // Delete; unknown ids are ignored.
    s.delete(&a, &[uuid(x), uuid(999)]).await.expect("delete");
    s.delete(&a, &[]).await.expect("delete nothing");
    assert_eq!(s.count(&a).await.expect("count after delete"), 3);
    let hits = s
        .search(&a, &[1.0, 0.0, 0.0, 0.0], 10)
        .await
        .expect("search after delete");
    assert!(!ids(&hits).contains(&uuid(x)), "{hits:?}");
    assert_eq!(hits.len(), 3);

    // Collections are isolated, with their own dimensions.
    s.ensure_collection(&b, 3).await.expect("create b");
    s.upsert(
        &b,
        vec![point(x, &[1.0, 0.0, 0.0]), point(50, &[0.0, 1.0, 0.0])],
    )
    .await
    .expect("upsert b");
    assert_eq!(s.count(&b).await.expect("count b"), 2);
    assert_eq!(s.count(&a).await.expect("count a"), 3);
    let hits = s.search(&b, &[1.0, 0.0, 0.0], 10).await.expect("search b");
    assert_eq!(ids(&hits), vec![uuid(x), uuid(50)]);
    let hits = s
        .search(&a, &[1.0, 0.0, 0.0, 0.0], 10)
        .await
        .expect("search a");
    assert!(
        !ids(&hits).contains(&uuid(x)) && !ids(&hits).contains(&uuid(50)),
        "{hits:?}"
    );

    s.optimize(&a).await.expect("optimize");
    assert_eq!(s.count(&a).await.expect("count after optimize"), 3);

    // Drop removes the collection and its points; the name can be reused with new dimensions.
    s.drop_collection(&a).await.expect("drop");
    assert_eq!(s.count(&a).await.expect("count dropped"), 0);
    assert!(matches!(
        s.search(&a, &[1.0; 4], 3).await,
        Err(VectorError::MissingCollection(_))
    ));
    assert_eq!(s.count(&b).await.expect("b survives"), 2);
    s.ensure_collection(&a, 8)
        .await
        .expect("recreate with other dimensions");
    assert_eq!(s.count(&a).await.expect("count recreated"), 0);
    assert!(s
        .search(&a, &[1.0; 8], 3)
        .await
        .expect("search recreated")
        .is_empty());

    s.drop_collection(&a).await.expect("clean up a");
    s.drop_collection(&b).await.expect("clean up b");
}

/// `n` unit vectors of `dimensions` components drawn around `clusters` centres that lie in a
/// random `intrinsic`-dimensional subspace, plus a little full-dimensional noise: the shape of
/// sentence embeddings (topics, low intrinsic dimension), unlike uniform random vectors, which
/// are a worst case for HNSW. The same `seed` gives the same vectors; vectors drawn with
/// another seed but the same `layout_seed` come from the same clusters (use that for queries).
pub fn clustered_vectors(
    n: usize,
    dimensions: usize,
    clusters: usize,
    intrinsic: usize,
    layout_seed: u64,
    seed: u64,
) -> Vec<Vec<f32>> {
    let mut layout = StdRng::seed_from_u64(layout_seed);
    let basis: Vec<Vec<f32>> = (0..intrinsic)
        .map(|_| (0..dimensions).map(|_| gaussian(&mut layout)).collect())
        .collect();
    let centres: Vec<Vec<f32>> = (0..clusters.max(1))
        .map(|_| (0..intrinsic).map(|_| gaussian(&mut layout)).collect())
        .collect();

    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let centre = &centres[rng.random_range(0..centres.len())];
            let mut v: Vec<f32> = (0..dimensions).map(|_| 0.3 * gaussian(&mut rng)).collect();
            for (axis, c) in basis.iter().zip(centre) {
                let coordinate = c + 0.6 * gaussian(&mut rng);
                for (vi, bi) in v.iter_mut().zip(axis) {
                    *vi += coordinate * bi;
                }
            }
            let norm = v
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::MIN_POSITIVE);
            v.iter().map(|x| x / norm).collect()
        })
        .collect()
}

/// A standard normal sample (Box-Muller), without pulling in `rand_distr`.
fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}
