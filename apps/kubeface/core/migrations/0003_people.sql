-- People managed in the application. Every known face (a person's photo) and every detected
-- face keep their 128-d encoding (128 little-endian float32, 512 bytes), so matching again
-- after a change of people needs no detection.

-- One known face of a person. source says where its picture is:
--   folder: `file` is relative to KNOWN_PEOPLE (imported by `kubeface enrol` / the face service);
--   upload: a photo posted to /people/<id>/photos, `file` relative to UNKNOWN_PEOPLE;
--   face:   a face of a processed image named through the API, its crop kept as `file`
--           (relative to UNKNOWN_PEOPLE); from_image_id/from_face_index say which face.
-- `file` is also the image_name Identify answers when this face is the closest.
CREATE TABLE IF NOT EXISTS person_photos (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  person_id INT UNSIGNED NOT NULL,
  source ENUM('folder', 'upload', 'face') NOT NULL,
  file VARCHAR(1024) NOT NULL,
  sha256 CHAR(64) CHARACTER SET ascii NOT NULL,
  box_top INT NOT NULL,
  box_right INT NOT NULL,
  box_bottom INT NOT NULL,
  box_left INT NOT NULL,
  encoding VARBINARY(512) NOT NULL,
  from_image_id BIGINT UNSIGNED NULL,
  from_face_index INT UNSIGNED NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY ix_person_photos_person (person_id),
  KEY ix_person_photos_from (from_image_id, from_face_index),
  CONSTRAINT fk_person_photos_person FOREIGN KEY (person_id) REFERENCES person (id)
    ON DELETE CASCADE,
  CONSTRAINT fk_person_photos_image FOREIGN KEY (from_image_id) REFERENCES images (id)
    ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- "This face is not that person": never matched to them again. Keyed by the face's place in
-- its image (processing an image again gives the same faces in the same order).
CREATE TABLE IF NOT EXISTS face_rejections (
  image_id BIGINT UNSIGNED NOT NULL,
  face_index INT UNSIGNED NOT NULL,
  person_id INT UNSIGNED NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (image_id, face_index, person_id),
  KEY ix_face_rejections_person (person_id),
  CONSTRAINT fk_face_rejections_image FOREIGN KEY (image_id) REFERENCES images (id)
    ON DELETE CASCADE,
  CONSTRAINT fk_face_rejections_person FOREIGN KEY (person_id) REFERENCES person (id)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row, bumped by every change of people or photos: face-service replicas poll it and
-- reload the known encodings when it moves.
CREATE TABLE IF NOT EXISTS people_version (
  id TINYINT UNSIGNED NOT NULL,
  version BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB;

INSERT IGNORE INTO people_version (id, version) VALUES (1, 0);

-- The encoding of each detected face, and the known face it matched.
ALTER TABLE faces
  ADD COLUMN encoding VARBINARY(512) NULL AFTER distance,
  ADD COLUMN photo_id INT UNSIGNED NULL AFTER known_image,
  ADD CONSTRAINT fk_faces_photo FOREIGN KEY (photo_id) REFERENCES person_photos (id)
    ON DELETE SET NULL;

-- An image whose file was uploaded (stored by content hash): deleting it deletes the file.
ALTER TABLE images
  ADD COLUMN uploaded TINYINT(1) NOT NULL DEFAULT 0 AFTER retries;

-- The content of a known-folder file when it was last imported: an unchanged file is not
-- encoded again, and a photo deleted through the API is not imported again.
ALTER TABLE person_images
  ADD COLUMN sha256 CHAR(64) CHARACTER SET ascii NULL AFTER person_id;
