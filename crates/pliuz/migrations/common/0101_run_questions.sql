-- Durable runs may pause on questions too ("human as a tool"): the run is
-- ready when its approvals are settled and its questions answered or expired.
CREATE TABLE run_questions (
    run_id TEXT NOT NULL REFERENCES runs(id),
    question_id TEXT NOT NULL REFERENCES questions(id),
    position BIGINT NOT NULL,
    PRIMARY KEY (run_id, question_id)
);
CREATE INDEX run_questions_question ON run_questions (question_id);
