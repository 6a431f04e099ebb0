-- kube-face schema, version 1. Every statement is idempotent (IF NOT EXISTS) so that the
-- MySQL container's init and `kubeface migrate` can both apply it safely.
-- Statements are separated by a line that ends with ';'.

CREATE TABLE IF NOT EXISTS person (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uq_person_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A known image (a file name relative to KNOWN_PEOPLE) and who is in it. The foreign key
-- keeps a known image from pointing at a person who does not exist.
CREATE TABLE IF NOT EXISTS person_images (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  image_name VARCHAR(255) NOT NULL,
  person_id INT UNSIGNED NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uq_person_images_name (image_name),
  KEY ix_person_images_person (person_id),
  CONSTRAINT fk_person_images_person FOREIGN KEY (person_id) REFERENCES person (id)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per posted image. `path` is relative to UNKNOWN_PEOPLE, normalised by
-- kubeface.core.paths.canonical (so `x.jpg` and `/unknown_people/x.jpg` are one image);
-- `path_sha` makes it unique without a 3072-byte index limit on the path.
CREATE TABLE IF NOT EXISTS images (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  path VARCHAR(1024) NOT NULL,
  path_sha CHAR(64) CHARACTER SET ascii AS (SHA2(path, 256)) STORED,
  status ENUM('pending', 'processing', 'processed', 'unknown', 'no_face', 'failed')
    NOT NULL DEFAULT 'pending',
  person_id INT UNSIGNED NULL,
  face_count INT UNSIGNED NULL,
  attempts INT UNSIGNED NOT NULL DEFAULT 0,
  last_error VARCHAR(1024) NULL,
  lease_until DATETIME(3) NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uq_images_path (path_sha),
  -- frontend: filter by status, newest first; retry job: status + age.
  KEY ix_images_status_id (status, id),
  KEY ix_images_status_updated (status, updated_at),
  CONSTRAINT fk_images_person FOREIGN KEY (person_id) REFERENCES person (id)
    ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every face found in an image: its box in the original image's pixels, the closest known
-- image and its person when the distance is within tolerance, and that distance.
CREATE TABLE IF NOT EXISTS faces (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  image_id BIGINT UNSIGNED NOT NULL,
  face_index INT UNSIGNED NOT NULL,
  box_top INT NOT NULL,
  box_right INT NOT NULL,
  box_bottom INT NOT NULL,
  box_left INT NOT NULL,
  person_id INT UNSIGNED NULL,
  known_image VARCHAR(255) NULL,
  distance DOUBLE NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_faces_image_index (image_id, face_index),
  KEY ix_faces_person (person_id),
  CONSTRAINT fk_faces_image FOREIGN KEY (image_id) REFERENCES images (id) ON DELETE CASCADE,
  CONSTRAINT fk_faces_person FOREIGN KEY (person_id) REFERENCES person (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
