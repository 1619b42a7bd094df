/** @jsxImportSource react */
// The page: Inertia passes the page's props, and live() keeps them current.
export interface ListProps {
  list: string;
  todos: { id: number; title: string }[];
  viewer: string;
  open?: number; // deferred: undefined until the browser has loaded it
}

export default function List({ list, todos, viewer, open }: ListProps) {
  return (
    <main>
      <p id="viewer">Hello, {viewer}</p>
      <h1>{list}</h1>
      <ul id="todos">
        {todos.map((todo) => (
          <li key={todo.id}>{todo.title}</li>
        ))}
      </ul>
      <p id="open">{open === undefined ? "…" : `${open} open`}</p>
    </main>
  );
}
