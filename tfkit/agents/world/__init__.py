"""The generated world: knowledge base, documents, questions, and the scripted teacher."""

from tfkit.agents.world.build import World, build_world, load_documents
from tfkit.agents.world.documents import render_documents
from tfkit.agents.world.kb import RELATIONS, KnowledgeBase, build_knowledge_base
from tfkit.agents.world.questions import (
    FAMILIES,
    Question,
    load_csv_questions,
    make_questions,
    split_entities,
)
from tfkit.agents.world.teacher import ScriptedTeacher, parse_fact

__all__ = ["World", "build_world", "load_documents", "render_documents", "RELATIONS",
           "KnowledgeBase", "build_knowledge_base", "FAMILIES",
           "Question", "load_csv_questions", "make_questions", "split_entities",
           "ScriptedTeacher", "parse_fact"]
