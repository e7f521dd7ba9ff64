// msgpackr treats a missing extractor as "no native acceleration" and uses its JS decoder.
module.exports = null;
